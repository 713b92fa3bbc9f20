-- Fanout: each group of tweets into each timeline of its group, trimmed (`TimelineCache.fanout_many`).
--   KEYS: timelines.
--   ARGV: max entries, only-existing flag ("1"/"0"), then groups: c, c tweet ids, n: the next n
--         keys all get these c tweets.
--   Returns the deliveries made.
-- ZCARD doubles as the existence check (an existing timeline holds at least the sentinel), so a
-- group costs two calls per timeline, three when it trims, however many tweets it carries.
-- Trimming removes ranks 1.. (rank 0 is the sentinel) down to max entries plus the sentinel. The
-- sentinel '0' is written here as `streams.timelines.cache.SENTINEL` names it.
local keep = tonumber(ARGV[1]) + 1
local only_existing = ARGV[2] == '1'
local written = 0
local a = 3
local k = 1
while a <= #ARGV do
  local c = tonumber(ARGV[a])
  local members = {}
  for j = a + 1, a + c do
    members[#members + 1] = ARGV[j]
    members[#members + 1] = ARGV[j]
  end
  local last = k + tonumber(ARGV[a + c + 1]) - 1
  a = a + c + 2
  for i = k, last do
    local key = KEYS[i]
    local n = 0
    if only_existing then
      n = redis.call('ZCARD', key)
      if n > 0 then
        n = n + redis.call('ZADD', key, unpack(members))
      end
    else
      redis.call('ZADD', key, 0, '0', unpack(members))
      n = redis.call('ZCARD', key)
    end
    if n > 0 then
      written = written + c
      if n > keep then
        redis.call('ZREMRANGEBYRANK', key, 1, n - keep)
      end
    end
  end
  k = last + 1
end
return written
