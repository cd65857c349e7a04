-- reconcile.lua: make the nights of one room type in Redis equal Postgres, without erasing
-- or double-counting a deduction still in flight.
--
-- The caller first read the hotel's in-flight hash (the set S1), then, in one Postgres
-- snapshot taken after that, each night's total_reserved and which ids of S1 were
-- committed. Redis should hold, for each night:
--     res = Postgres' total_reserved + the rooms of deductions not yet committed.
-- Against the in-flight hash as it is now (S2), an id is:
--   in S2, committed at the snapshot ('c')   -> already in Postgres' count: not added;
--   in S2, uncommitted at the snapshot ('u') -> in Redis but not in Postgres: added;
--   in S2, not in S1 (deducted since)        -> unknown whether the snapshot saw it: its
--                                               nights are deferred to the next pass;
--   in S1 as 'u', gone from S2 (it committed
--   or was given back since the snapshot)    -> unknown again: its nights are deferred;
--   past its deadline at the snapshot        -> its transaction had ended before the
--                                               snapshot, so Postgres' count is the truth:
--                                               not added, and the entry is removed.
-- A committed deduction's entry is settled (commit.lua puts a '=' before it) rather than
-- removed, so a deduction made after S1 was read and committed before this script runs
-- still shows:
--   settled in S2 and already settled in S1  -> committed before the snapshot, which
--                                               counts it: the entry is removed;
--   settled in S2, not settled in S1         -> committed since S1 was read, perhaps after
--                                               the snapshot: its nights are deferred, and
--                                               the next pass removes the entry.
-- A give-back (a cancel or an expiry ending a stay; its entry's rooms are negative) is
-- registered before Postgres ends the stay and leaves the hash with its release, so
-- whether the snapshot saw the ending and whether Redis has had the rooms back cannot
-- both be known: its nights are deferred whenever it is in S1 or S2 (and not past its
-- deadline).
--
-- KEYS[1..n]  the night hashes of the room type (same hash slot: {hotel_id})
-- KEYS[n+1]   the hotel's in-flight hash
-- ARGV[1]     n, the number of nights
-- ARGV[2]     the snapshot time (unix seconds), taken before the Postgres read
-- ARGV[3]     the room type id
-- ARGV[4]     when the Postgres read began, by Redis' clock (TIME, in microseconds)
-- ARGV[5]     the idle TTL in seconds (see lua/load_nights.lua)
-- ARGV[6 + 9(i-1) .. 14 + 9(i-1)]  for night i: date (YYYY-MM-DD), cap, Postgres'
--             total_reserved, rate, then its restrictions as lua/load_nights.lua writes
--             them: ss, cta, mins, maxs, ctdn
-- then        m, the number of S1 entries, followed by m triples: id, 'c' or 'u', entry
--
-- Only nights Redis holds are compared and repaired. A night Redis does not hold is not
-- drift: it is loaded from Postgres when someone asks for it (lua/load_nights.lua), so
-- Redis holds what is in demand, not everything on sale. A repair keeps the night's
-- expiry, which is its idle TTL, but shortens one longer than that (EXPIRE .. LT): nights
-- written before nights came on demand expired only once they had passed. That never
-- cuts a deduction in flight short: the idle TTL is longer than the in-flight TTL.
--
-- Restrictions are never in flight: a night whose restrictions differ is rewritten even
-- when its count waits for the next pass (but only if Redis holds the night: a partial
-- hash without its count would look loaded to load_nights.lua and never be filled).
--
-- A night that lua/load_nights.lua wrote after the Postgres read began (its `at` is later
-- than ARGV[4]) may hold what staff changed since: the whole night waits for the next
-- pass, so a repair never puts back the capacity, rate or restrictions a change just
-- replaced.
--
-- Returns three lists:
--   {checked, drifted, repaired, deferred}: nights compared (those Redis holds), nights
--     that differed, nights rewritten, nights left for the next pass;
--   the indices of the nights the next pass must look at again: those deferred, and
--     those a deduction or give-back still in the in-flight hash covers (its ending will
--     change them, and may have to be repaired);
--   the entries removed as past their deadline and never settled: their rooms are still
--     deducted on all their nights, some perhaps outside this call, which the caller
--     journals for the next pass to set from Postgres.
local n = tonumber(ARGV[1])
local snapshot = tonumber(ARGV[2])
local room_type = ARGV[3]
local read_at = tonumber(ARGV[4])
local idle = ARGV[5]
local inflight_key = KEYS[n + 1]

local nights = {}
local RULES = {'ss', 'cta', 'mins', 'maxs', 'ctdn'}
for i = 1, n do
  local b = 6 + 9 * (i - 1)
  nights[i] = {
    date = ARGV[b], cap = ARGV[b + 1], res = tonumber(ARGV[b + 2]),
    rate = ARGV[b + 3], add = 0, deferred = false, revisit = false,
    rules = {ARGV[b + 4], ARGV[b + 5], ARGV[b + 6], ARGV[b + 7], ARGV[b + 8]},
  }
end
-- The HSET arguments of a night's restrictions.
local function rules_of(night)
  local fields = {}
  for r = 1, #RULES do
    fields[#fields + 1] = RULES[r]
    fields[#fields + 1] = night.rules[r]
  end
  return fields
end

local function parse(entry)
  local rooms, rt, check_in, check_out, deadline =
    string.match(entry, '^(-?%d+)|(%d+)|([%d-]+)|([%d-]+)|(%d+)$')
  return tonumber(rooms), rt, check_in, check_out, tonumber(deadline)
end

-- Applies f to every night of this room type that the stay [check_in, check_out) covers.
local function each_night(rt, check_in, check_out, f)
  if rt ~= room_type then return end
  for i = 1, n do
    if nights[i].date >= check_in and nights[i].date < check_out then f(nights[i]) end
  end
end

local s1 = {}
local p = 6 + 9 * n
local m = tonumber(ARGV[p])
for j = 1, m do
  local q = p + 3 * (j - 1)
  s1[ARGV[q + 1]] = { flag = ARGV[q + 2], entry = ARGV[q + 3] }
end

local function is_settled(entry)
  return string.sub(entry, 1, 1) == '='
end

local current = redis.call('HGETALL', inflight_key)
local in_s2 = {}
local lapsed = {}
for k = 1, #current, 2 do
  local id, entry = current[k], current[k + 1]
  in_s2[id] = true
  local settled = is_settled(entry)
  local rooms, rt, check_in, check_out, deadline = parse(settled and string.sub(entry, 2) or entry)
  local kept = false
  if not rooms then
    redis.call('HDEL', inflight_key, id)
  elseif deadline <= snapshot then
    redis.call('HDEL', inflight_key, id)
    if not settled then lapsed[#lapsed + 1] = entry end
  elseif settled then
    if s1[id] and is_settled(s1[id].entry) then
      redis.call('HDEL', inflight_key, id)
    else
      kept = true
      each_night(rt, check_in, check_out, function(night) night.deferred = true end)
    end
  elseif s1[id] == nil or rooms < 0 then
    kept = true
    each_night(rt, check_in, check_out, function(night) night.deferred = true end)
  else
    kept = true
    if s1[id].flag == 'u' then
      each_night(rt, check_in, check_out, function(night) night.add = night.add + rooms end)
    end
  end
  if kept then
    each_night(rt, check_in, check_out, function(night) night.revisit = true end)
  end
end
for id, known in pairs(s1) do
  if not in_s2[id] and not is_settled(known.entry) then
    local rooms, rt, check_in, check_out, deadline = parse(known.entry)
    if rooms and deadline > snapshot and (known.flag == 'u' or rooms < 0) then
      each_night(rt, check_in, check_out, function(night) night.deferred = true end)
    end
  end
end

local checked, drifted, repaired, deferred = 0, 0, 0, 0
local revisit = {}

-- Compares one night Redis holds with what it should be, and repairs it when it may.
local function compare(i, night, held, at)
  checked = checked + 1
  local expected = night.res + night.add
  local fresh = at and tonumber(at) > read_at
  local counts_differ = held[1] ~= night.cap or tonumber(held[2]) ~= expected
    or held[3] ~= night.rate
  local rules_differ = false
  for r = 1, #RULES do
    if held[3 + r] ~= night.rules[r] then rules_differ = true end
  end
  if fresh then night.revisit = true end
  if not (counts_differ or rules_differ) then return end
  drifted = drifted + 1
  local written = false
  if fresh or (counts_differ and night.deferred) then
    deferred = deferred + 1
  elseif counts_differ then
    redis.call('HSET', KEYS[i], 'cap', night.cap, 'res', expected, 'rate', night.rate,
      unpack(rules_of(night)))
    written = true
  end
  if rules_differ and not written and not fresh then
    redis.call('HSET', KEYS[i], unpack(rules_of(night)))
    written = true
  end
  if written then repaired = repaired + 1 end
end

for i = 1, n do
  local night = nights[i]
  local held = redis.call('HMGET', KEYS[i], 'cap', 'res', 'rate', 'at', unpack(RULES))
  local at = table.remove(held, 4)
  if held[1] then
    compare(i, night, held, at)
    redis.call('EXPIRE', KEYS[i], idle, 'LT')
  else
    -- Not held, or a stray field without its night, which would pass for a loaded night
    -- and never be filled: removed, so the next ask loads the night whole.
    redis.call('DEL', KEYS[i])
  end
  if night.deferred or night.revisit then
    revisit[#revisit + 1] = i
  end
end
return {{checked, drifted, repaired, deferred}, revisit, lapsed}
