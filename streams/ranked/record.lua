-- Records served items that have no record yet (`record_served_predictions`): a tweet served again
-- keeps its first record and its place in the pending queue. Past the per-user cap nothing is
-- recorded. Queue entries older than the oldest score kept are dropped.
--   KEYS: the user's served-record hash, the pending queue.
--   ARGV: now ms, the hash's lifetime ms, the oldest queue score kept, the per-user cap, then
--         "tweet member record" triples (space-separated; the member is
--         `streams.serving.keys.pending_member`).
local key, pending, now = KEYS[1], KEYS[2], ARGV[1]
if redis.call('HLEN', key) < tonumber(ARGV[4]) then
  for tweet, member, record in string.gmatch(ARGV[5], '(%d+) (%S+) (%S+)') do
    if redis.call('HSETNX', key, tweet, record) == 1 then
      redis.call('ZADD', pending, now, member)
    end
  end
end
redis.call('PEXPIRE', key, ARGV[2])
redis.call('ZREMRANGEBYSCORE', pending, '-inf', '(' .. ARGV[3])
