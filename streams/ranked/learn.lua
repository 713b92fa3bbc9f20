-- The viewer-feedback learner's write (`queue_learning`). Per field: fade the stored sums to now,
-- add the increments. An increment from a clock behind the field's `ts` (one fitter's clock
-- behind another's) is added unfaded and `ts` stays. Past sweep-above fields, every field faded
-- below negligible is dropped.
--   KEYS[1]: the viewer's feedback hash.
--   ARGV: now ms, half-life ms, lifetime ms, sweep-above, negligible, then field, engaged,
--         expected triples.
local key, now, half_life = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local function faded(stored, to)
  local e, x, ts = string.match(stored, '^(%S+) (%S+) (%S+)$')
  e, x, ts = tonumber(e), tonumber(x), tonumber(ts)
  -- A value this script did not write starts over: an error here would stop the fitter for good.
  if not (e and x and ts) then return 0, 0, to end
  if to > ts then
    local factor = math.exp(-(to - ts) * math.log(2) / half_life)
    return e * factor, x * factor, to
  end
  return e, x, ts
end
for i = 6, #ARGV, 3 do
  local e, x, ts = 0, 0, now
  local stored = redis.call('HGET', key, ARGV[i])
  if stored then e, x, ts = faded(stored, now) end
  e = e + tonumber(ARGV[i + 1])
  x = x + tonumber(ARGV[i + 2])
  redis.call('HSET', key, ARGV[i], string.format('%.17g %.17g %d', e, x, ts))
end
if redis.call('HLEN', key) > tonumber(ARGV[4]) then
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local e, x = faded(all[i + 1], now)
    if e < tonumber(ARGV[5]) and x < tonumber(ARGV[5]) then redis.call('HDEL', key, all[i]) end
  end
end
redis.call('PEXPIRE', key, ARGV[3])
