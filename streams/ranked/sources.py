"""The ranked pipeline's candidate sources, read from Redis: the viewer's pushed timeline, the
followed celebrities' newest tweets (pulled at read time) and the trending set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from redis.asyncio import Redis

from streams.mixer.components import Query, SourceItem
from streams.serving.keys import TRENDING
from streams.serving.view import ServingReads, UserContext
from streams.timelines.cache import TimelineCache

# The mixer ranks up to this many candidates per request (Home Mixer scores ~1,500; 2 cores, 500).
MAX_CANDIDATES = 500
TRENDING_CANDIDATES = 100


class RedisCandidates:
    def __init__(self, redis: Redis, store: TimelineCache, reads: ServingReads, context: UserContext) -> None:
        self._redis = redis
        self._store = store
        self._reads = reads
        self._context = context

    async def timeline(self, query: Query) -> Sequence[SourceItem]:
        ids = await self._store.read(query.user_id, MAX_CANDIDATES, query.max_id) or []
        return [SourceItem(t) for t in ids]

    async def celebrities(self, query: Query) -> Sequence[SourceItem]:
        celebs = sorted(self._context.celebrities)
        if not celebs:
            return []
        per_author = max(1, MAX_CANDIDATES // (2 * len(celebs)))
        pulled = await self._reads.authored(celebs, per_author, query.max_id)
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
