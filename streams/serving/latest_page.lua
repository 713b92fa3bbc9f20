-- A latest read in one round trip (`ServingReads.latest_page`): the readiness check, the user's
-- activity mark, the newest pushed and pulled candidates below max_id, and the page the merge
-- rules (`streams.timelines.rules.merge_timeline`) cut from them, hydrated: done here rather than
-- in the worker, whose Python per read was most of a read's cost.
--   KEYS: [1] active users, [2] celebrities, [3] the user's follows, [4] blocks, [5] blocked by,
--         [6] mutes, [7] home timeline, [8...] every partition's ready key.
--   ARGV: [1] user, [2] now (ms), [3] active since (ms), [4] page size, [5] candidates merged,
--         [6] max_id or "" for the newest, [7] extra rows per sorted-set read, [8] author-tweets
--         key prefix, [9] tweet key prefix, [10] like-count key prefix.
--   Returns {0} while the Redis view is not ready; {1, follows, celebrities followed} when the
--   timeline is missing or the user was inactive (the caller rebuilds it and asks again);
--   else {2, {id, author, 1 if pushed else 0, text, likes or false, ...}, more}: the newest
--   `limit` of the newest `want` candidates of all sources together whose tweet the store still
--   has and whose author the user does not hide, and 1 in `more` if there are older candidates
--   than those `want`.
-- The author-tweets and tweet keys are built here from the ids the script reads, as
-- `hydrate.lua` does (keys.py).
local user, now, limit, want = ARGV[1], ARGV[2], tonumber(ARGV[4]), tonumber(ARGV[5])
local max_id, slack = ARGV[6], tonumber(ARGV[7])

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
local pushed = newest(KEYS[7])
local pulled = {}
for i, celebrity in ipairs(celebrities) do pulled[i] = newest(ARGV[8] .. celebrity) end

-- The newest `want` distinct candidates of all sources together (a k-way merge of lists that are
-- each newest first): only those can be on the page unless filters take more than the caller's
-- margin, and then the caller asks again for more (`more` says whether there are).
-- The pushed ones are kept apart: a tweet both pushed and pulled counts as pushed.
local lists, head, current = {pushed}, {}, {}
for i, ids in ipairs(pulled) do lists[i + 1] = ids end
for k, list in ipairs(lists) do
  head[k] = 1
  current[k] = list[1]
end
local chosen, seen, pushed_set, sources = {}, {}, {}, #lists
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
  if best == 1 then pushed_set[best_id] = true end
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

-- The page: newest first, less the tweets gone from the store and the hidden authors' (a block
-- hides both ways, a mute one way), then hydrated with like counts in one MGET.
local hidden_set = {}
for _, author in ipairs(redis.call('SUNION', KEYS[4], KEYS[5], KEYS[6])) do hidden_set[author] = true end
local page, likes_keys = {}, {}
for _, id in ipairs(chosen) do
  if #likes_keys == limit then break end
  local fields = redis.call('HMGET', ARGV[9] .. id, 'author_id', 'text')
  if fields[1] and not hidden_set[fields[1]] then
    page[#page + 1] = {id, fields[1], pushed_set[id] and 1 or 0, fields[2] or ''}
    likes_keys[#likes_keys + 1] = ARGV[10] .. id
  end
end
local rows = {}
if #page > 0 then
  local likes = redis.call('MGET', unpack(likes_keys))
  for i, item in ipairs(page) do
    rows[#rows + 1] = item[1]
    rows[#rows + 1] = item[2]
    rows[#rows + 1] = item[3]
    rows[#rows + 1] = item[4]
    rows[#rows + 1] = likes[i]
  end
end
return {2, rows, more}
