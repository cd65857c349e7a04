-- commit.lua: mark the deductions of one hotel that Postgres has committed, a batch at a
-- time (the group commit's transaction, or one booking committed on its own).
--
-- KEYS[1]      the hotel's in-flight hash (see reserve.lua)
-- KEYS[2..n+1] the deduction markers of the committed reservation ids (same hash slot as
--              KEYS[1]: {hotel_id})
-- ARGV[1]      seconds a committed marker is kept (replays within it find the marker
--              committed and read the reservation from Postgres without deducting again)
-- ARGV[2..n+1] the reservation ids, in the order of their markers
--
-- Each marker becomes 'c' (release.lua then never gives the stay back as an uncommitted
-- deduction) and each id's in-flight entry becomes settled: the same entry behind a '='
-- (reconcile.lua). It stays until a reconciler pass has seen it settled, so that a
-- deduction made and committed in the middle of a pass cannot pass unseen: the pass
-- defers its nights. All in one atomic call for the whole batch.
--
-- Returns: n, the deductions marked.
local ttl = tonumber(ARGV[1])
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], 'c', 'EX', ttl)
  local entry = redis.call('HGET', KEYS[1], ARGV[i])
  if entry and string.sub(entry, 1, 1) ~= '=' then
    redis.call('HSET', KEYS[1], ARGV[i], '=' .. entry)
  end
end
return #KEYS - 1
