-- The matured served items (`_fit_round`): those queued at or before the cutoff, at most limit.
--   KEYS[1]: the pending queue.
--   ARGV: cutoff ms, limit, the served-record prefix, then the outcome kinds.
--   Returns per item {member, {record or nil, one mark or nil per outcome kind}}.
-- Each item's record key and mark fields come from the member read here, so they are built here:
-- the member parsed as `streams.serving.keys.parse_pending_member` does, the record key as
-- `calibration_served_key`, the fields as `outcome_field`.
local out = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])) do
  local user, tweet = string.match(member, '^(%d+):(%d+)$')
  local fields = {tweet}
  for i = 4, #ARGV do fields[#fields + 1] = tweet .. ':' .. ARGV[i] end
  out[#out + 1] = {member, redis.call('HMGET', ARGV[3] .. user, unpack(fields))}
end
return out
