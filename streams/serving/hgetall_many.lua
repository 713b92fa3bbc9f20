-- HGETALL of every key in one call (`ServingReads.tweets`).
--   KEYS: hashes.
--   Returns each hash's flat {field, value, ...}, empty for a missing one.
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGETALL', key) end
return out
