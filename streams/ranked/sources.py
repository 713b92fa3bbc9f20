"""The ranked pipeline's candidate sources, read from Redis: the viewer's pushed timeline, the
followed celebrities' newest tweets (pulled at read time) and the trending set."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

from redis.asyncio import Redis

from streams.mixer.components import Query, SourceItem
from streams.serving.keys import TRENDING
from streams.serving.view import ServingReads, UserContext
from streams.timelines.cache import TimelineCache

# The mixer ranks up to this many in-network candidates per request, plus the trending set (Home
# Mixer scores ~1,500; 2 cores, 500).
MAX_CANDIDATES = 500
TRENDING_CANDIDATES = 100

InNetwork = tuple[list[int], dict[int, list[int]]]
"""The pushed timeline's ids, and each pulled celebrity's."""


def newest_in_network(pushed: Sequence[int], pulled: dict[int, list[int]], limit: int) -> InNetwork:
    """Both cut to the newest `limit` distinct tweets of their union: what a latest read of
    `limit` would hold."""
    union = set(pushed).union(*pulled.values())
    if len(union) <= limit:
        return list(pushed), pulled
    floor = sorted(union, reverse=True)[limit - 1]
    return [t for t in pushed if t >= floor], {a: [t for t in ids if t >= floor] for a, ids in pulled.items()}


class RedisCandidates:
    """The pushed timeline and the pulled celebrities share one budget, `MAX_CANDIDATES`: both
    sources read at once, then each keeps its part of the newest `MAX_CANDIDATES` of the two, so
    the scoring work of a request is bounded however many celebrities the viewer follows."""

    def __init__(self, redis: Redis, store: TimelineCache, reads: ServingReads, context: UserContext) -> None:
        self._redis = redis
        self._store = store
        self._reads = reads
        self._context = context
        self._in_network: asyncio.Future[InNetwork] | None = None

    async def _read_in_network(self, query: Query) -> InNetwork:
        celebs = sorted(self._context.celebrities)
        # The celebrities together read at most half the budget: a bound on the read, not a quota.
        per_author = max(1, MAX_CANDIDATES // (2 * len(celebs))) if celebs else 0
        pushed, pulled = await asyncio.gather(
            self._store.read(query.user_id, MAX_CANDIDATES, query.max_id),
            self._reads.authored(celebs, per_author, query.max_id) if celebs else asyncio.sleep(0, {}),
        )
        return newest_in_network(pushed or [], pulled, MAX_CANDIDATES)

    def _shared_read(self, query: Query) -> asyncio.Future[InNetwork]:
        if self._in_network is None:
            self._in_network = asyncio.ensure_future(self._read_in_network(query))
        return self._in_network

    async def timeline(self, query: Query) -> Sequence[SourceItem]:
        pushed, _ = await self._shared_read(query)
        return [SourceItem(t) for t in pushed]

    async def celebrities(self, query: Query) -> Sequence[SourceItem]:
        _, pulled = await self._shared_read(query)
        return [SourceItem(t, author) for author, ids in pulled.items() for t in ids]

    async def trending(self, query: Query) -> Sequence[SourceItem]:
        raw = cast(
            list[tuple[bytes, float]],
            await self._redis.zrevrange(TRENDING, 0, TRENDING_CANDIDATES - 1, withscores=True),
        )
        items = [(int(member), score) for member, score in raw]
        if query.max_id is not None:
            items = [(t, s) for t, s in items if t < query.max_id]
        return [SourceItem(t, reason=f"trending: signal boost {s:.2f}") for t, s in items]
