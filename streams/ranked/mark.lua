-- Marks engagements on the served records they answer (`mark_outcomes`): a mark is set only
-- where the record exists.
--   KEYS: each engagement's user's served-record hash.
--   ARGV[1]: per key, in order, a "tweet field" line (the field is
--            `streams.serving.keys.outcome_field`).
local i = 0
for tweet, field in string.gmatch(ARGV[1], '(%d+) (%S+)') do
  i = i + 1
  if redis.call('HEXISTS', KEYS[i], tweet) == 1 then
    redis.call('HSET', KEYS[i], field, 1)
  end
end
