-- Remove tweets from timelines (`TimelineCache.remove`). ZREM never empties a timeline: the
-- sentinel stays.
--   KEYS: timelines.
--   ARGV: tweet ids.
--   Returns the entries removed.
local removed = 0
for i = 1, #KEYS do
  removed = removed + redis.call('ZREM', KEYS[i], unpack(ARGV))
end
return removed
