-- A latest read in one round trip (`ServingReads.latest_page`): the readiness check, the user's
-- activity mark, the newest pushed and pulled candidates below max_id, and the author and text of
-- each. The merge rules stay in Python (`streams.timelines.rules.merge_timeline`).
--   KEYS: [1] active users, [2] celebrities, [3] the user's follows, [4] blocks, [5] blocked by,
--         [6] mutes, [7] home timeline, [8...] every partition's ready key.
--   ARGV: [1] user, [2] now (ms), [3] active since (ms), [4] candidates wanted, [5] max_id or
--         "" for the newest, [6] extra rows per sorted-set read, [7] author-tweets key prefix,
--         [8] tweet key prefix, [9] like-count key prefix.
--   Returns {0} while the Redis view is not ready; {1, follows, celebrities followed} when the
--   timeline is missing or the user was inactive (the caller rebuilds it and asks again);
--   else {2, celebrities followed, hidden authors, pushed ids, {pulled ids per celebrity},
--   {id, author, text, likes, ...} for each of them, author false where the tweet is gone, likes
--   false where nobody liked it, more}: the
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
  if max_id == '' then
    -- The first page needs no filter: the sentinel, scored 0, can only be the last row.
    local rows = redis.call('ZREVRANGEBYSCORE', key, '+inf', '-inf', 'LIMIT', 0, want + 1)
    if rows[#rows] == '0' or #rows > want then rows[#rows] = nil end
    return rows
  end
  local out, offset, rows_per_read = {}, 0, want + slack
  while true do
    local rows = redis.call('ZREVRANGEBYSCORE', key, max_id, '-inf', 'LIMIT', offset, rows_per_read)
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
-- Each source keeps its part of them, so the caller can tell pushed from pulled (a tweet both
-- pushed and pulled is in both).
local lists, kept, head, current = {pushed}, {{}}, {}, {}
for i, ids in ipairs(pulled) do
  lists[i + 1] = ids
  kept[i + 1] = {}
end
for k, list in ipairs(lists) do
  head[k] = 1
  current[k] = list[1]
end
local chosen, seen, sources = {}, {}, #lists
while #chosen < want do
  local best, best_id = nil, nil
  for k = 1, sources do
    local id = current[k]
    if id and (best_id == nil or #id > #best_id or (#id == #best_id and id > best_id)) then
      best, best_id = k, id
    end
  end
  if best == nil then break end
  head[best] = head[best] + 1
  current[best] = lists[best][head[best]]
  local part = kept[best]
  part[#part + 1] = best_id
  if not seen[best_id] then
    seen[best_id] = true
    chosen[#chosen + 1] = best_id
  end
end
-- A source read to `want` rows may hold more than it gave.
local more = 0
for k, list in ipairs(lists) do
  if current[k] or #list == want then more = 1 end
end
local kept_pulled = {}
for k = 2, sources do kept_pulled[k - 1] = kept[k] end

-- Like counts by MGET in chunks: one call per key costs more, and unpack's stack is bounded.
local likes = {}
for first = 1, #chosen, 500 do
  local keys = {}
  for i = first, math.min(first + 499, #chosen) do keys[#keys + 1] = ARGV[9] .. chosen[i] end
  for _, count in ipairs(redis.call('MGET', unpack(keys))) do likes[#likes + 1] = count end
end
local bodies = {}
for i, id in ipairs(chosen) do
  local fields = redis.call('HMGET', ARGV[8] .. id, 'author_id', 'text')
  bodies[#bodies + 1] = id
  bodies[#bodies + 1] = fields[1]
  bodies[#bodies + 1] = fields[2]
  bodies[#bodies + 1] = likes[i]
end
return {2, celebrities, hidden, kept[1], kept_pulled, bodies, more}
