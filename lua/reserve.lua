-- reserve.lua: pre-deduct the rooms of one stay, all nights or none.
--
-- Every night of a room type is a hash {cap, res, rate, ss, cta, mins, maxs, ctdn}: cap =
-- floor(total * ratio), the rooms the night may hold; res = rooms reserved (including
-- deductions whose Postgres commit is still in flight); rate = the nightly rate in cents;
-- the rest are its restrictions (see lua/load_nights.lua).
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
-- ARGV[5]     '1' when staff override the restrictions, else '0'
-- ARGV[6]     the idle TTL in seconds: every night the stay asked for stays in Redis at
--             least that long from now (see lua/load_nights.lua)
--
-- Restrictions are checked before capacity, in the order every checker shares (see
-- src/domain/restrictions.rs): stop-sell on the earliest night, then closed to arrival,
-- minimum and maximum stay on the arrival night, then closed to departure on the
-- check-out date (the last night's ctdn).
--
-- Returns:
--   {1}            deducted on every night; the marker and the in-flight entry are set
--   {0, i}         sold out: night i has fewer than ARGV[1] rooms left; nothing changed
--   {-1, i, j...}  nights i, j... are not in Redis (cold cache); load them and retry;
--                  nothing changed
--   {2}            the marker exists: this reservation id already deducted, and its commit
--                  is in flight or done (the service marks it 'c' once committed);
--                  nothing changed
--   {3, i, r}      the stay breaks restriction r set on night i (r: 1 stop-sell, 2 closed
--                  to arrival, 3 minimum stay, 4 maximum stay, 5 closed to departure, for
--                  which i is the last night); nothing changed
local rooms = tonumber(ARGV[1])
local n = #KEYS - 2
local marker = KEYS[n + 1]

if redis.call('EXISTS', marker) == 1 then
  return {2}
end

local missing = {}
local nights = {}
for i = 1, n do
  nights[i] = redis.call('HMGET', KEYS[i], 'cap', 'res', 'ss', 'cta', 'mins', 'maxs', 'ctdn')
  if not nights[i][1] then
    missing[#missing + 1] = i
  end
end
if #missing > 0 then
  table.insert(missing, 1, -1)
  return missing
end
for i = 1, n do
  redis.call('EXPIRE', KEYS[i], ARGV[6], 'GT')
end

if ARGV[5] ~= '1' then
  for i = 1, n do
    if nights[i][3] == '1' then return {3, i, 1} end
  end
  local arrival = nights[1]
  if arrival[4] == '1' then return {3, 1, 2} end
  local min_stay, max_stay = tonumber(arrival[5] or '0'), tonumber(arrival[6] or '0')
  if min_stay > 0 and n < min_stay then return {3, 1, 3} end
  if max_stay > 0 and n > max_stay then return {3, 1, 4} end
  if nights[n][7] == '1' then return {3, n, 5} end
end

for i = 1, n do
  if tonumber(nights[i][1]) - tonumber(nights[i][2] or 0) < rooms then
    return {0, i}
  end
end

for i = 1, n do
  redis.call('HINCRBY', KEYS[i], 'res', rooms)
end
redis.call('SET', marker, rooms, 'EX', tonumber(ARGV[2]))
redis.call('HSET', KEYS[n + 2], ARGV[3], ARGV[4])
return {1}
