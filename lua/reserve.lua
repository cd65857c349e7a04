-- reserve.lua: pre-deduct the rooms of one stay, all nights or none.
--
-- Every night of a room type is a hash {cap, res, rate}: cap = floor(total * ratio), the
-- rooms the night may hold; res = rooms reserved (including deductions whose Postgres
-- commit is still in flight); rate = the nightly rate in cents.
--
-- KEYS[1..n]  the night hashes of the stay, in date order (same hash slot: {hotel_id})
-- KEYS[n+1]   the deduction marker of the reservation id
-- KEYS[n+2]   the hotel's in-flight hash: reservation id -> its deduction, which the
--             reconciler reads so that a repair never erases a deduction still in flight
-- ARGV[1]     rooms to deduct on every night (integer >= 1)
-- ARGV[2]     seconds the deduction marker lives (it outlives any booking transaction)
-- ARGV[3]     the reservation id (the in-flight hash field)
-- ARGV[4]     the deduction, "rooms|room_type_id|check_in|check_out|deadline", where
--             deadline (unix seconds) is when its transaction has surely ended
--
-- Returns:
--   {1}            deducted on every night; the marker and the in-flight entry are set
--   {0, i}         sold out: night i has fewer than ARGV[1] rooms left; nothing changed
--   {-1, i, j...}  nights i, j... are not in Redis (cold cache); load them and retry;
--                  nothing changed
--   {2}            the marker exists: this reservation id already deducted, and its commit
--                  is in flight or done (the service marks it 'c' once committed);
--                  nothing changed
local rooms = tonumber(ARGV[1])
local n = #KEYS - 2
local marker = KEYS[n + 1]

if redis.call('EXISTS', marker) == 1 then
  return {2}
end

local missing = {}
for i = 1, n do
  local night = redis.call('HMGET', KEYS[i], 'cap', 'res')
  if not night[1] then
    missing[#missing + 1] = i
  elseif tonumber(night[1]) - tonumber(night[2] or 0) < rooms then
    return {0, i}
  end
end
if #missing > 0 then
  table.insert(missing, 1, -1)
  return missing
end

for i = 1, n do
  redis.call('HINCRBY', KEYS[i], 'res', rooms)
end
redis.call('SET', marker, rooms, 'EX', tonumber(ARGV[2]))
redis.call('HSET', KEYS[n + 2], ARGV[3], ARGV[4])
return {1}
