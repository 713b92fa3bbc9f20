-- HGET of one field in each of many hashes in one call (`ServingReads.fields`): one command
-- instead of a pipeline of thousands, whose replies the client would parse one by one.
--   KEYS: hashes.
--   ARGV: per key, in order, the field to read.
--   Returns each value, nil (false) where the hash or field is missing.
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGET', key, ARGV[i]) end
return out
