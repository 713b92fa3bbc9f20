-- What the read path keeps of a ranked page (`RedisServedRecorder.record_served`): the served set
-- and each tweet's served tag (the serving arm's counts, in the bucket's hash slot, are counted
-- beside this call). The served set keeps the newest `keep`;
-- a tweet trimmed from it leaves the served-by hash too, so the hash never holds more than the
-- set, and one that does (left by an earlier version) is cleaned once.
--   KEYS: the viewer's served set, the viewer's served-by hash (one hash slot: keys.py).
--   ARGV: now ms, how many to keep, the served tag (`streams.serving.keys.served_tag`), the tweet
--         ids (space-separated).
local served, served_by, now, keep, tag = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), ARGV[3]
local scored, tagged = {}, {}
for id in string.gmatch(ARGV[4], '%d+') do
  scored[#scored + 1] = now
  scored[#scored + 1] = id
  tagged[#tagged + 1] = id
  tagged[#tagged + 1] = tag
end
redis.call('ZADD', served, unpack(scored))
redis.call('HSET', served_by, unpack(tagged))
local stop = -(keep + 1)
local trimmed = redis.call('ZRANGE', served, 0, stop)
if #trimmed > 0 then
  redis.call('ZREMRANGEBYRANK', served, 0, stop)
  redis.call('HDEL', served_by, unpack(trimmed))
end
if redis.call('HLEN', served_by) > keep then
  for _, id in ipairs(redis.call('HKEYS', served_by)) do
    if not redis.call('ZSCORE', served, id) then redis.call('HDEL', served_by, id) end
  end
end
