-- Every candidate's author and retweet_of, the feature strings of the viewer, the authors, the
-- viewer x authors and the tweets, the tweets' signals, whether each was served to the viewer,
-- and in a learning bucket the viewer's feedback on the authors (`RedisHydrator.hydrate`).
--   KEYS: the viewer's features, the viewer's served set, then the viewer's feedback hash (only
--         in a learning bucket).
--   ARGV: tweet prefix, tweet features prefix, signal prefix, author features prefix, viewer x
--         author features prefix, the feedback hash's viewer field, tweet ids (space-separated).
--   Returns {distinct authors (in first-seen order), each tweet's author (nil: tweet gone),
--            {position, retweet_of, ...}, feature strings (nil: none) of the viewer, authors,
--            viewer x authors and tweets, {position, signal string, ...}, positions served before,
--            the feedback values of `lift_fields(distinct authors)` (empty outside a learning
--            bucket)}; positions count from 0.
-- The per-candidate keys are built here, prefix .. id (`streams.serving.keys` gives the prefixes):
-- the authors' keys come from the tweets read here, and declaring the tweets' 1,500 keys would
-- cost the worker ~1.7 ms per request to pack. Undeclared keys: one Redis, not a cluster.
local ids, signal_keys, author_of, retweets, authors, seen = {}, {}, {}, {}, {}, {}
for id in string.gmatch(ARGV[7], '%d+') do
  local i = #ids + 1
  ids[i] = id
  signal_keys[i] = ARGV[3] .. id
  local t = redis.call('HMGET', ARGV[1] .. id, 'author_id', 'retweet_of')
  author_of[i] = t[1]
  if t[2] then
    retweets[#retweets + 1] = i - 1
    retweets[#retweets + 1] = t[2]
  end
  if t[1] and not seen[t[1]] then
    seen[t[1]] = true
    authors[#authors + 1] = t[1]
  end
end
local keys = {KEYS[1]}
for _, a in ipairs(authors) do keys[#keys + 1] = ARGV[4] .. a end
for _, a in ipairs(authors) do keys[#keys + 1] = ARGV[5] .. a end
for _, id in ipairs(ids) do keys[#keys + 1] = ARGV[2] .. id end
local features = redis.call('MGET', unpack(keys))
local signals = {}
for i, v in ipairs(redis.call('MGET', unpack(signal_keys))) do
  if v then
    signals[#signals + 1] = i - 1
    signals[#signals + 1] = v
  end
end
local served = {}
for i, v in ipairs(redis.call('ZMSCORE', KEYS[2], unpack(ids))) do
  if v then served[#served + 1] = i - 1 end
end
local feedback = {}
if KEYS[3] then
  feedback = redis.call('HMGET', KEYS[3], ARGV[6], unpack(authors))
end
return {authors, author_of, retweets, features, signals, served, feedback}
