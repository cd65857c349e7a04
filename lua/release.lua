-- release.lua: give the rooms of one stay back to its nights.
--
-- KEYS[1..n]  the night hashes of the stay (same hash slot: {hotel_id})
-- KEYS[n+1]   the deduction marker of the reservation id
-- KEYS[n+2]   the hotel's in-flight hash (see reserve.lua)
-- ARGV[1]     rooms to give back on every night (integer >= 1)
-- ARGV[2]     'deduction': give back a pre-deduction that Postgres did not commit (sold
--                      out at the re-check, a failure, a timeout). Only if the marker
--                      exists and is not marked committed ('c'); otherwise nothing changes
--                      at all, the in-flight entry included (a committed deduction's
--                      entry was settled when it was marked, and the reconciler removes
--                      it; an entry without a marker is left for the reconciler, which
--                      drops it once past its deadline). The marker
--                      is deleted, so a second release changes nothing.
--             'stay':  give back a committed stay that Postgres has just canceled or
--                      expired (Postgres decides that exactly once); the marker, if any,
--                      is deleted too.
-- ARGV[3]     the reservation id (its in-flight entry is removed whenever rooms are given
--             back)
--
-- Nights no longer in Redis (expired, or Redis restarted) are skipped: there is nothing to
-- give back to, and the next load from Postgres brings the right count.
--
-- Returns: 1 when rooms were given back, 0 when there was nothing to release.
local rooms = tonumber(ARGV[1])
local n = #KEYS - 2
local marker = KEYS[n + 1]

if ARGV[2] == 'deduction' then
  local held = redis.call('GET', marker)
  if not held or held == 'c' then
    return 0
  end
end
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('HINCRBY', KEYS[i], 'res', -rooms)
  end
end
redis.call('DEL', marker)
redis.call('HDEL', KEYS[n + 2], ARGV[3])
return 1
