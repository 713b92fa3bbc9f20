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
from streams.serving.latest import Rebuild
from streams.serving.view import ServingReads, UserContext
from streams.snowflake import snowflake_ms
from streams.timelines.cache import TimelineCache
from streams.timelines.rules import DAY_MS, is_active

# Candidates hydrated beyond `limit`, so that filtered ones rarely cost a second round trip; each
# one costs Redis a command in the read's script.
OVERFETCH = 10
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
        await self.rebuild(user_id, context.following, context.celebrities)
        CACHE_REBUILDS.inc()
        return context, True

    async def latest(self, user_id: int, limit: int, max_id: int | None, now_ms: int) -> TimelineResponse:
        """The newest page below `max_id`: on a materialised timeline of an active user, one round
        trip; one more to rebuild the timeline first, and more while filters leave the page short
        of older candidates that Redis still has."""
        deadline = time.monotonic() + READY_WAIT_S
        active_since_ms = now_ms - self._active_days * DAY_MS
        rebuilt = False
        want = limit + OVERFETCH
        while True:
            read = await self._reads.latest_page(
                user_id, now_ms, active_since_ms, self._partitions, limit, want, max_id
            )
            if read is None:
                if time.monotonic() > deadline:
                    raise NotReady("timelines are being restored after a Redis loss; retry shortly")
                await asyncio.sleep(READY_POLL_S)
                continue
            if isinstance(read, Rebuild):
                # A rebuilt timeline is materialised and the read marked the user active, so the
                # next read is a hit; a second Rebuild would mean the view is changing under it.
                if rebuilt:
                    raise NotReady("the home timeline changed while it was rebuilt; retry")
                await self.rebuild(user_id, read.following, read.celebrities)
                CACHE_REBUILDS.inc()
                rebuilt = True
                continue
            if len(read.rows) == limit or not read.more:
                break
            want *= 2
        if not rebuilt:
            CACHE_HITS.inc()
        pushed_source = "rebuild" if rebuilt else "push"
        items = [
            {
                "tweet_id": tweet_id,
                "tweet_id_str": str(tweet_id),
                "author_id": author_id,
                "source": pushed_source if pushed else "pull",
                "text": text,
                "like_count": likes,
                "created_at_ms": snowflake_ms(tweet_id),
            }
            for tweet_id, author_id, pushed, text, likes in read.rows
        ]
        next_max_id = read.rows[-1][0] if len(read.rows) == limit else None
        return TimelineResponse(user_id, items, next_max_id, rebuilt)

    async def rebuild(self, user_id: int, following: set[int], celebrities: set[int]) -> None:
        """Materialise the timeline from the followees' newest tweets (celebrities' are pulled)."""
        pushed_authors = sorted((following - celebrities) | {user_id})
        recent = await self._reads.authored(pushed_authors, self._timeline_max, None)
        newest = heapq.nlargest(self._timeline_max, (t for ids in recent.values() for t in ids))
        await self._store.replace(user_id, newest)
