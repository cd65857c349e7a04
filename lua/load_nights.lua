-- load_nights.lua: put nights read from Postgres into Redis.
--
-- KEYS[1..n]  night hashes (same hash slot: {hotel_id})
-- ARGV[1]     'absent':  only nights missing from Redis are written (cache warm-up after a
--                        miss: a night already present may hold deductions still in flight,
--                        which Postgres does not know yet, so it is fresher and is kept)
--             'refresh': staff changed the inventory: cap and rate are overwritten; res is
--                        kept when present (for the same reason) and loaded when absent
-- ARGV[2 + 4(i-1) .. 5 + 4(i-1)]  for night i: cap, res, rate, expire-at (unix seconds)
--
-- Every night written gets its expiry, so past nights leave Redis by themselves.
--
-- Returns: the number of nights written.
local mode = ARGV[1]
local written = 0
for i = 1, #KEYS do
  local base = 2 + 4 * (i - 1)
  local cap, res, rate, expire_at = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local present = redis.call('EXISTS', KEYS[i]) == 1
  if not present then
    redis.call('HSET', KEYS[i], 'cap', cap, 'res', res, 'rate', rate)
    redis.call('EXPIREAT', KEYS[i], expire_at)
    written = written + 1
  elseif mode == 'refresh' then
    redis.call('HSET', KEYS[i], 'cap', cap, 'rate', rate)
    redis.call('EXPIREAT', KEYS[i], expire_at)
    written = written + 1
  end
end
return written
