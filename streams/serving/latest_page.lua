-- A latest read in one round trip (`ServingReads.latest_page`): the readiness check, the user's
-- activity mark, the newest pushed and pulled candidates below max_id, and the author and text of
-- each. The merge rules stay in Python (`streams.timelines.rules.merge_timeline`).
--   KEYS: [1] active users, [2] celebrities, [3] the user's follows, [4] blocks, [5] blocked by,
--         [6] mutes, [7] home timeline, [8...] every partition's ready key.
--   ARGV: [1] user, [2] now (ms), [3] active since (ms), [4] candidates wanted, [5] max_id or
--         "" for the newest, [6] extra rows per sorted-set read, [7] author-tweets key prefix,
--         [8] tweet key prefix.
--   Returns {0} while the Redis view is not ready; {1, follows, celebrities followed} when the
--   timeline is missing or the user was inactive (the caller rebuilds it and asks again);
--   else {2, celebrities followed, hidden authors, pushed ids, {pulled ids per celebrity},
--   {id, author, text, ...} for each of them, author false where the tweet is gone, more}: the
--   newest `want` candidates of all sources together, and 1 in `more` if there are others.
-- The author-tweets and tweet keys are built here from the ids the script reads, as
-- `hydrate.lua` does (keys.py).
local user, now, want, max_id, slack = ARGV[1], ARGV[2], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])

-- Ids compared as decimal strings (no leading zeros): exact, where Lua's doubles are not.
local function below(id)
  return max_id == '' or #id < #max_id or (#id == #max_id and id < max_id)
end

-- The newest `want` ids below max_id, the sentinel "0" left out. Scores are doubles, so the read
-- is inclusive of max_id's score and pages on while ids at or above max_id fill the rows.
local function newest(key)
  local upper = max_id == '' and '+inf' or max_id
  local out, offset, rows_per_read = {}, 0, want + slack
  while true do
    local rows = redis.call('ZREVRANGEBYSCORE', key, upper, '-inf', 'LIMIT', offset, rows_per_read)
    for _, id in ipairs(rows) do
      if id ~= '0' and below(id) then
        out[#out + 1] = id
        if #out == want then return out end
      end
    end
    if #rows < rows_per_read then return out end
    offset = offset + rows_per_read
  end
end

local partitions = #KEYS - 7
local ready = redis.call('EXISTS', unpack(KEYS, 8)) == partitions
local last_active = redis.call('ZSCORE', KEYS[1], user)
redis.call('ZADD', KEYS[1], 'GT', now, user)
if not ready then return {0} end
local active = last_active and tonumber(last_active) >= tonumber(ARGV[3])
if not active or redis.call('EXISTS', KEYS[7]) == 0 then
  return {1, redis.call('SMEMBERS', KEYS[3]), redis.call('SINTER', KEYS[3], KEYS[2])}
end

local celebrities = redis.call('SINTER', KEYS[3], KEYS[2])
local hidden = redis.call('SUNION', KEYS[4], KEYS[5], KEYS[6])
local pushed = newest(KEYS[7])
local pulled = {}
for i, celebrity in ipairs(celebrities) do pulled[i] = newest(ARGV[7] .. celebrity) end

-- The newest `want` distinct candidates of all sources together (a k-way merge of lists that are
-- each newest first): only those can be on the page unless filters take more than the caller's
-- margin, and then the caller asks again for more (`more` says whether there are).
local lists = {pushed}
for _, ids in ipairs(pulled) do lists[#lists + 1] = ids end
local heads = {}
for k = 1, #lists do heads[k] = 1 end
local function newer(a, b) return #a > #b or (#a == #b and a > b) end
local chosen, seen = {}, {}
while #chosen < want do
  local best
  for k, list in ipairs(lists) do
    local id = list[heads[k]]
    if id and (best == nil or newer(id, lists[best][heads[best]])) then best = k end
  end
  if best == nil then break end
  local id = lists[best][heads[best]]
  heads[best] = heads[best] + 1
  if not seen[id] then
    seen[id] = true
    chosen[#chosen + 1] = id
  end
end
-- A source read to `want` rows may hold more than it gave.
local more = 0
for k, list in ipairs(lists) do
  if list[heads[k]] or #list == want then more = 1 end
end

-- Each source's part of the chosen, so the caller can tell pushed from pulled.
local kept_pushed, kept_pulled = {}, {}
for _, id in ipairs(pushed) do if seen[id] then kept_pushed[#kept_pushed + 1] = id end end
for i, ids in ipairs(pulled) do
  kept_pulled[i] = {}
  for _, id in ipairs(ids) do if seen[id] then kept_pulled[i][#kept_pulled[i] + 1] = id end end
end

local bodies = {}
for _, id in ipairs(chosen) do
  local fields = redis.call('HMGET', ARGV[8] .. id, 'author_id', 'text')
  bodies[#bodies + 1] = id
  bodies[#bodies + 1] = fields[1]
  bodies[#bodies + 1] = fields[2]
end
return {2, celebrities, hidden, kept_pushed, kept_pulled, bodies, more}
