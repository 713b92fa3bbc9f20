-- Merge many tweets into one timeline, trimmed (`TimelineCache.merge`). The sentinel '0' is
-- written here as `streams.timelines.cache.SENTINEL` names it.
--   KEYS[1]: the timeline.
--   ARGV: max entries, only-existing flag ("1"/"0"), then (score, member) pairs.
--   Returns the entries added, or -1 when only-existing found no timeline.
local key = KEYS[1]
local keep = tonumber(ARGV[1]) + 1
if ARGV[2] == '1' and redis.call('EXISTS', key) == 0 then
  return -1
end
redis.call('ZADD', key, 0, '0')
local added = redis.call('ZADD', key, unpack(ARGV, 3))
local n = redis.call('ZCARD', key)
if n > keep then
  redis.call('ZREMRANGEBYRANK', key, 1, n - keep)
end
return added
