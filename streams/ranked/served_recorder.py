"""The ranked pipeline's side effect: what was served, kept for the "previously served" filter,
for the bandit's reward (`streams.ranked.bandit_store.record_feedback`) and for the calibration
(`streams.ranked.served_outcomes`), in one round trip."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from streams.mixer.adaptation import feedback_increments
from streams.mixer.components import PageItem, Query
from streams.ranked.served_outcomes import record_served_predictions
from streams.serving.keys import adaptation_key, served_by_key, served_key

# What a user was served stays known this long for the "previously served" filter and feedback.
SERVED_KEEP = 2000


# What the read path keeps of a ranked page, in one script call with its ids as one argument: the
# served set for the "previously served" filter, each tweet's bucket/strategy for the bandit's
# reward (`record_feedback`), and the serving arm's counts. The served set keeps the newest
# `SERVED_KEEP`; a tweet trimmed from it leaves the served-by hash too, which would otherwise keep
# every tweet never engaged with. So the hash never holds more than the set; one that does was
# left by an earlier version and is cleaned once.
#   ARGV: served key, served-by key, the bucket's adaptation key, now ms, how many to keep, the
#         bucket/strategy tag, the tweet ids, then the arm's field, amount pairs.
SERVE = """
local served, served_by, now, tag = ARGV[1], ARGV[2], ARGV[4], ARGV[6]
local scored, tagged = {}, {}
for id in string.gmatch(ARGV[7], '%d+') do
  scored[#scored + 1] = now
  scored[#scored + 1] = id
  tagged[#tagged + 1] = id
  tagged[#tagged + 1] = tag
end
redis.call('ZADD', served, unpack(scored))
redis.call('HSET', served_by, unpack(tagged))
local stop = -(tonumber(ARGV[5]) + 1)
local trimmed = redis.call('ZRANGE', served, 0, stop)
if #trimmed > 0 then
  redis.call('ZREMRANGEBYRANK', served, 0, stop)
  redis.call('HDEL', served_by, unpack(trimmed))
end
if redis.call('HLEN', served_by) > tonumber(ARGV[5]) then
  for _, id in ipairs(redis.call('HKEYS', served_by)) do
    if not redis.call('ZSCORE', served, id) then redis.call('HDEL', served_by, id) end
  end
end
for i = 8, #ARGV, 2 do redis.call('HINCRBYFLOAT', ARGV[3], ARGV[i], ARGV[i + 1]) end
"""


class RedisServedRecorder:
    def __init__(self, redis: Redis, label_window_ms: int, keep: int = SERVED_KEEP) -> None:
        self._redis = redis
        self._label_window_ms = label_window_ms
        self._keep = keep

    async def record_served(self, query: Query, items: Sequence[PageItem]) -> None:
        if not items:
            return
        increments = feedback_increments(query.strategy, len(items), 0)
        pipe = self._redis.pipeline(transaction=False)
        pipe.eval(
            SERVE,
            0,
            served_key(query.user_id),
            served_by_key(query.user_id),
            adaptation_key(query.bucket),
            query.now_ms,
            self._keep,
            f"{query.bucket}/{query.strategy}",
            " ".join([str(i.tweet_id) for i in items]),
            *(x for field, amount in increments.items() if amount for x in (field, amount)),
        )
        record_served_predictions(pipe, query.user_id, query.now_ms, items, self._label_window_ms)
        await pipe.execute()
