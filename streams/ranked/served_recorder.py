"""The ranked pipeline's side effect: what was served, kept for the "previously served" filter,
for the bandit's reward (`streams.ranked.bandit_store.record_feedback`) and for the calibration
(`streams.ranked.served_outcomes`), in one round trip."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from streams.mixer.adaptation import feedback_increments
from streams.mixer.components import PageItem, Query
from streams.ranked.served_outcomes import record_served_predictions
from streams.serving.keys import adaptation_key, served_by_key, served_key, served_tag
from streams.serving.scripts import Script, execute

# What a user was served stays known this long for the "previously served" filter and feedback.
SERVED_KEEP = 2000

# The served set and each tweet's served tag, with the page's ids as one argument.
SERVE = Script("streams.ranked", "serve.lua")


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
        SERVE.queue(
            pipe,
            [served_key(query.user_id), served_by_key(query.user_id)],
            [
                query.now_ms,
                self._keep,
                served_tag(query.bucket, query.strategy),
                " ".join([str(i.tweet_id) for i in items]),
            ],
        )
        # The arm's counts are the bucket's, in another hash slot than the viewer's served keys.
        for field, amount in increments.items():
            if amount:
                pipe.hincrbyfloat(adaptation_key(query.bucket), field, amount)
        record_served_predictions(pipe, query.user_id, query.now_ms, items, self._label_window_ms)
        await execute(pipe)
