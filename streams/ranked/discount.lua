-- Scales the arms' counts of one bucket's hash, unless another discounter got there first
-- (`discount_bandit`). The first call only starts the clock, and sets the bucket's totals to the
-- sums of its arms: a hash kept before the totals existed gets its whole history (the arms are
-- not faded before it).
--   KEYS[1]: the bucket's adaptation hash.
--   ARGV: the discounted-at field, its value as read ('' if none), factor, now ms, the total
--         served and engaged fields, then each arm's served and engaged fields.
--   Returns 1 when it discounted, 0 when another discounter had.
local key = KEYS[1]
if (redis.call('HGET', key, ARGV[1]) or '') ~= ARGV[2] then return 0 end
if ARGV[2] == '' then
  local served, engaged = 0, 0
  for i = 7, #ARGV, 2 do
    served = served + tonumber(redis.call('HGET', key, ARGV[i]) or '0')
    engaged = engaged + tonumber(redis.call('HGET', key, ARGV[i + 1]) or '0')
  end
  redis.call('HSET', key, ARGV[5], served, ARGV[6], engaged)
else
  for i = 7, #ARGV do
    local v = redis.call('HGET', key, ARGV[i])
    if v then redis.call('HSET', key, ARGV[i], tonumber(v) * tonumber(ARGV[3])) end
  end
end
redis.call('HSET', key, ARGV[1], ARGV[4])
return 1
