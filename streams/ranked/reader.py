"""`mode=ranked`: the mixer pipeline (`streams.mixer`) fed from Redis.

The reader opens a request (the viewer's context, the bandit's state and the calibration fit),
plans its weights from its A/B bucket's bandit, and runs the pipeline over the candidate sources
(`streams.ranked.sources`), the hydrator (`streams.ranked.hydrator`) and the served recorder
(`streams.ranked.served_recorder`).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from redis.asyncio import Redis

from streams.mixer.adaptation import Adaptation
from streams.mixer.components import Query
from streams.mixer.engagement_model import ScoringModel
from streams.mixer.pipeline import RankedPipeline, ranked_pipeline_config
from streams.ranked.bandit_store import load_adaptation
from streams.ranked.hydrator import RedisHydrator
from streams.ranked.served_outcomes import load_calibration
from streams.ranked.served_recorder import RedisServedRecorder
from streams.ranked.sources import RedisCandidates
from streams.serving.view import ServingReads
from streams.settings import DEFAULT_CALIBRATION_LABEL_S
from streams.timelines.cache import TimelineCache
from streams.timelines.reader import TimelineReader


class RankedReader:
    def __init__(
        self,
        redis: Redis,
        reader: TimelineReader,
        store: TimelineCache,
        frozen: bool,
        label_window_ms: int = DEFAULT_CALIBRATION_LABEL_S * 1000,
    ) -> None:
        self._redis = redis
        self._reader = reader
        self._store = store
        self._frozen = frozen
        self._label_window_ms = label_window_ms
        self._rng = random.Random()

    async def adaptation(self) -> Adaptation:
        adaptation = await load_adaptation(self._redis)
        if self._frozen:
            adaptation.freeze()
        return adaptation

    async def ranked(
        self, user_id: int, limit: int, max_id: int | None, now_ms: int, record: bool = True
    ) -> dict[str, Any]:
        """The ranked page; `record=False` (a background refresh) leaves out the served recorder, so
        the read changes neither the "previously served" set nor the bandit's or calibration's counts."""
        (context, rebuilt), adaptation, calibration = await asyncio.gather(
            self._reader.prepare(user_id, now_ms), self.adaptation(), load_calibration(self._redis)
        )
        bucket, strategy, weights = adaptation.plan(user_id, self._rng)
        query = Query(user_id, limit, max_id, now_ms, bucket, strategy, weights)
        reads = ServingReads(self._redis)
        candidates = RedisCandidates(self._redis, self._store, reads, context)
        config = ranked_pipeline_config(
            timeline=candidates.timeline,
            celebrities=candidates.celebrities,
            trending=candidates.trending,
            hydrator=RedisHydrator(
                self._redis, context, feedback=bucket in adaptation.learning, frozen=self._frozen
            ),
            recorder=RedisServedRecorder(self._redis, self._label_window_ms),
            model=ScoringModel(calibration=calibration),
        )
        pipeline = RankedPipeline(config)
        page = await pipeline.page(query)
        # Recording what was served and reading the page's texts and like counts are independent
        # round trips.
        ids = [item.tweet_id for item in page.items]
        shown = asyncio.gather(reads.tweets(ids), reads.like_counts(ids))
        if record:
            _, (tweets, likes) = await asyncio.gather(pipeline.side_effects(query, page), shown)
        else:
            tweets, likes = await shown
        body = page.to_json()
        for item in body["items"]:
            item["tweet_id_str"] = str(item["tweet_id"])
            item["text"] = tweets.get(item["tweet_id"], {}).get("text", "")
            item["like_count"] = likes.get(item["tweet_id"], 0)
        # The next page ranks what is older than this page's oldest item; the "previously served"
        # filter then drops what this page already showed.
        full = len(page.items) == limit
        next_max_id = min(item.tweet_id for item in page.items) if full else None
        return {**body, "user_id": user_id, "rebuilt": rebuilt, "next_max_id": next_max_id}
