-- load_nights.lua: put nights read from Postgres into Redis.
--
-- KEYS[1..n]  night hashes (same hash slot: {hotel_id})
-- ARGV[1]     'absent':  only nights missing from Redis are written, whole (a miss, or an
--                        operator warming a hotel before a sale: a night already present
--                        may hold deductions still in flight, which Postgres does not
--                        know yet, so it is fresher and is kept)
--             'refresh': staff changed the inventory: on present nights cap and rate are
--                        overwritten and res is kept (for the same reason)
--             'rules':   staff changed the restrictions: on present nights only those are
--                        overwritten
--             Each change writes only what it changed, so two changes whose writes land
--             out of order cannot undo each other's. A change leaves absent nights
--             absent: Redis holds what guests ask for, not everything staff edit.
-- ARGV[2]     the idle TTL in seconds (see below)
-- ARGV[3 + 9(i-1) .. 11 + 9(i-1)]  for night i: cap, res, rate, expire-at (unix seconds),
--             then its restrictions, each '0' when unset:
--               ss    '1': stop-sell, no stay may include the night
--               cta   '1': closed to arrival, no stay may start on it
--               mins  the minimum stay, in nights, of stays arriving on it
--               maxs  the maximum stay, in nights, of stays arriving on it
--               ctdn  '1': the next date is closed to departure, so no stay whose last
--                     night this is may be booked
--
-- A night loaded expires after the idle TTL, or when it has passed (its expire-at) if that
-- is sooner. Each ask for it (reserve.lua, an availability read) pushes the idle expiry on
-- (EXPIRE .. GT). That never keeps a night past its expire-at: the idle TTL is at most a
-- day, a night is asked for only while it can still be sold, which ends by noon UTC the
-- day after it (UTC-12), and its expire-at is noon UTC the day after that. So a night
-- nobody asks for leaves Redis by itself, and a past night as before. A change (refresh,
-- rules, a reconciler repair) keeps the night's expiry. Each night written records when it
-- was written as `at` (Redis' own clock, in microseconds, the same for
-- every innkeeper instance): the reconciler leaves a night alone when it was written after
-- the reconciler's own Postgres read began, since that read may predate what was written.
--
-- Returns: the number of nights written.
local mode = ARGV[1]
local idle = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = time[1] .. string.format('%06d', tonumber(time[2]))
local idle_until = tonumber(time[1]) + idle
local written = 0
for i = 1, #KEYS do
  local base = 3 + 9 * (i - 1)
  local cap, res, rate, expire_at = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local rules = {'ss', ARGV[base + 4], 'cta', ARGV[base + 5], 'mins', ARGV[base + 6],
                 'maxs', ARGV[base + 7], 'ctdn', ARGV[base + 8]}
  local present = redis.call('EXISTS', KEYS[i]) == 1
  local write = nil
  if not present then
    if mode == 'absent' then
      write = {'cap', cap, 'res', res, 'rate', rate, unpack(rules)}
    end
  elseif mode == 'refresh' then
    write = {'cap', cap, 'rate', rate}
  elseif mode == 'rules' then
    write = rules
  end
  if write then
    table.insert(write, 'at')
    table.insert(write, now)
    redis.call('HSET', KEYS[i], unpack(write))
    if not present then
      redis.call('EXPIREAT', KEYS[i], math.min(tonumber(expire_at), idle_until))
    end
    written = written + 1
  end
end
return written
