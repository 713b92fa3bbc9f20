"""The read path of a home timeline: pushed entries merged with pulled celebrity tweets, filtered,
hydrated; a missing or inactive user's timeline rebuilt first from the follow graph and the tweet
store (both as Redis holds them for the read path).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from streams.runtime.metrics import REGISTRY
from streams.serving.view import ServingReads, UserContext
from streams.snowflake import snowflake_ms
from streams.timelines.cache import TimelineCache
from streams.timelines.rules import is_active, merge_timeline

# Candidates fetched beyond `limit` per source, so that filtered ones rarely leave a page short.
OVERFETCH = 50
# How long a read waits for the workers to write the Redis view back after a Redis loss.
READY_WAIT_S = 15.0
READY_POLL_S = 0.1

TIMELINE_READS = Counter(
    "homemixer_timeline_reads_total",
    "Timeline reads (latest and ranked) by cache outcome: hit (served from the materialised "
    "timeline in Redis) or rebuild (missing, or the user was inactive, so rebuilt first).",
    ["cache"],
    registry=REGISTRY,
)
CACHE_HITS, CACHE_REBUILDS = TIMELINE_READS.labels("hit"), TIMELINE_READS.labels("rebuild")


class NotReady(Exception):
    """The Redis view is being restored (after a Redis loss); the caller answers 503."""


@dataclass(frozen=True)
class TimelineResponse:
    user_id: int
    items: list[dict[str, Any]]
    next_max_id: int | None
    rebuilt: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "items": self.items,
            "next_max_id": self.next_max_id,
            "rebuilt": self.rebuilt,
        }


class TimelineReader:
    def __init__(
        self, reads: ServingReads, store: TimelineCache, partitions: int, active_days: int, timeline_max: int
    ) -> None:
        self._reads = reads
        self._store = store
        self._partitions = partitions
        self._active_days = active_days
        self._timeline_max = timeline_max

    async def prepare(self, user_id: int, now_ms: int) -> tuple[UserContext, bool]:
        """Wait for the Redis view, mark the user active, and rebuild the timeline if it is missing
        or the user was inactive; the flag says whether it was rebuilt."""
        deadline = time.monotonic() + READY_WAIT_S
        opened = await self._reads.open_read(user_id, now_ms, self._partitions)
        # Each try marks the user active: whether they were is what the first try saw.
        last_active_ms = opened.context.last_active_ms
        while not opened.ready:
            if time.monotonic() > deadline:
                raise NotReady("timelines are being restored after a Redis loss; retry shortly")
            await asyncio.sleep(READY_POLL_S)
            opened = await self._reads.open_read(user_id, now_ms, self._partitions)
        context = opened.context
        if is_active(last_active_ms, now_ms, self._active_days) and opened.materialised:
            CACHE_HITS.inc()
            return context, False
        await self.rebuild(user_id, context)
        CACHE_REBUILDS.inc()
        return context, True

    async def latest(self, user_id: int, limit: int, max_id: int | None, now_ms: int) -> TimelineResponse:
        context, rebuilt = await self.prepare(user_id, now_ms)
        pushed = await self._store.read(user_id, limit + OVERFETCH, max_id) or []
        pulled = await self._reads.authored(sorted(context.celebrities), limit + OVERFETCH, max_id)
        candidates = [*pushed, *(t for ids in pulled.values() for t in ids)]
        tweets = await self._reads.tweets(candidates)
        page = merge_timeline(
            pushed,
            pulled,
            limit,
            max_id,
            hidden_authors=context.hidden,
            deleted={t for t in candidates if t not in tweets},
            author_of={t: int(fields["author_id"]) for t, fields in tweets.items()},
        )
        likes = await self._reads.like_counts([item.tweet_id for item in page.items])
        items = []
        for item in page.items:
            fields = tweets[item.tweet_id]
            source = "rebuild" if rebuilt and item.source == "push" else item.source
            items.append(
                {
                    "tweet_id": item.tweet_id,
                    "tweet_id_str": str(item.tweet_id),
                    "author_id": item.author_id,
                    "source": source,
                    "text": fields.get("text", ""),
                    "like_count": likes[item.tweet_id],
                    "created_at_ms": snowflake_ms(item.tweet_id),
                }
            )
        return TimelineResponse(user_id, items, page.next_max_id, rebuilt)

    async def rebuild(self, user_id: int, context: UserContext) -> None:
        """Materialise the timeline from the followees' newest tweets (celebrities' are pulled)."""
        pushed_authors = sorted((context.following - context.celebrities) | {user_id})
        recent = await self._reads.authored(pushed_authors, self._timeline_max, None)
        newest = heapq.nlargest(self._timeline_max, (t for ids in recent.values() for t in ids))
        await self._store.replace(user_id, newest)
