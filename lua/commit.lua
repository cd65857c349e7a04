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
-- deduction) and each id leaves the in-flight hash (the reconciler then takes Postgres'
-- count as the truth about it), in one atomic call for the whole batch.
--
-- Returns: n, the deductions marked.
local ttl = tonumber(ARGV[1])
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], 'c', 'EX', ttl)
  redis.call('HDEL', KEYS[1], ARGV[i])
end
return #KEYS - 1
