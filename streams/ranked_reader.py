"""`mode=ranked`: the mixer pipeline (`streams.mixer`) fed from Redis.

Candidate sources read the pushed timeline, the followed celebrities' tweets and the trending
set; the hydrator reads the viewer's graph and every candidate's tweet and feature hashes in one
pipeline; the side effect records what was served (for paging filters and for the bandit's
feedback). Which weights a request uses comes from its A/B bucket's bandit, kept in Redis.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, cast

from redis.asyncio import Redis

from streams.mixer.adaptation import Adaptation, feedback_increments
from streams.mixer.components import PageItem, Query, SourceItem, ViewerContext
from streams.mixer.features import CandidateFeatures, HomeFeatures, decayed_boost, entity_counts, tweet_age_ms
from streams.mixer.pipeline import RankedPipeline, ranked_pipeline_config
from streams.redis_keys import (
    TRENDING,
    adaptation_key,
    features_key,
    not_interested_key,
    served_by_key,
    served_key,
    tweet_key,
)
from streams.serving_view import ServingReads, UserContext
from streams.timeline_reader import TimelineReader
from streams.timeline_store import TimelineStore

# The mixer ranks up to this many candidates per request (Home Mixer scores ~1,500; 2 cores, 500).
MAX_CANDIDATES = 500
TRENDING_CANDIDATES = 100
# What a user was served stays known this long for the "previously served" filter and feedback.
SERVED_KEEP = 2000


def _floats(raw: dict[bytes, bytes]) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in raw.items()}


# HGETALL of many keys in one script call: a pipeline of 1,500 commands spends most of a ranked
# request packing and unpacking them in Python; one call returns the same rows, parsed in C.
HGETALL_MANY = (
    "local out = {} for i, key in ipairs(KEYS) do out[i] = redis.call('HGETALL', key) end return out"
)


async def hgetall_many(redis: Redis, keys: Sequence[str]) -> list[dict[bytes, bytes]]:
    if not keys:
        return []
    flat: list[list[bytes]] = await redis.eval(HGETALL_MANY, len(keys), *keys)
    return [dict(zip(row[::2], row[1::2], strict=True)) for row in flat]


class RedisCandidates:
    def __init__(self, redis: Redis, store: TimelineStore, reads: ServingReads, context: UserContext) -> None:
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


class RedisHydrator:
    def __init__(self, redis: Redis, context: UserContext) -> None:
        self._redis = redis
        self._context = context

    async def hydrate_viewer(self, query: Query) -> ViewerContext:
        pipe = self._redis.pipeline(transaction=False)
        pipe.smembers(not_interested_key(query.user_id))
        pipe.zrange(served_key(query.user_id), 0, -1)
        not_interested, served = await pipe.execute()
        # UserContext.hidden already joins blocks both ways and mutes; the filter reports one reason.
        return ViewerContext(
            following=frozenset(self._context.following),
            blocked=frozenset(self._context.hidden),
            not_interested=frozenset(int(x) for x in not_interested),
            served=frozenset(int(x) for x in served),
        )

    async def hydrate(
        self, query: Query, viewer: ViewerContext, items: Sequence[SourceItem]
    ) -> Sequence[CandidateFeatures]:
        keys = []
        for item in items:
            keys += [
                tweet_key(item.tweet_id),
                features_key("tweet", str(item.tweet_id)),
                features_key("signal", str(item.tweet_id)),
            ]
        rows = await hgetall_many(self._redis, keys)
        tweets = [rows[i * 3 : i * 3 + 3] for i in range(len(items))]
        authors = sorted({int(row[0][b"author_id"]) for row in tweets if row[0]})
        viewer_keys = [features_key("user", str(query.user_id))]
        for author in authors:
            viewer_keys.append(features_key("author", str(author)))
            viewer_keys.append(
                features_key("user_author", HomeFeatures.user_author_id(query.user_id, author))
            )
        user_row, *author_rows = await hgetall_many(self._redis, viewer_keys)
        user_counts = entity_counts(_floats(user_row), query.now_ms)
        author_counts = {
            a: entity_counts(_floats(author_rows[2 * i]), query.now_ms) for i, a in enumerate(authors)
        }
        affinity = {
            a: entity_counts(_floats(author_rows[2 * i + 1]), query.now_ms) for i, a in enumerate(authors)
        }
        hydrated = []
        for item, (tweet, tweet_features, signal) in zip(items, tweets, strict=True):
            if not tweet:
                hydrated.append(CandidateFeatures.deleted_tweet(item.tweet_id, item.author_id or 0))
                continue
            author = int(tweet[b"author_id"])
            retweet_of = tweet.get(b"retweet_of")
            hydrated.append(
                CandidateFeatures(
                    tweet_id=item.tweet_id,
                    author_id=author,
                    in_network=author in viewer.following or author == query.user_id,
                    retweet_of=None if retweet_of is None else int(retweet_of),
                    tweet=entity_counts(_floats(tweet_features), query.now_ms),
                    author=author_counts[author],
                    user=user_counts,
                    user_author=affinity[author],
                    age_ms=tweet_age_ms(item.tweet_id, query.now_ms),
                    signal_boost=decayed_boost(_floats(signal), query.now_ms),
                )
            )
        return hydrated


class RedisServedRecorder:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def record_served(self, query: Query, items: Sequence[PageItem]) -> None:
        if not items:
            return
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(served_key(query.user_id), {str(i.tweet_id): query.now_ms for i in items})
        pipe.zremrangebyrank(served_key(query.user_id), 0, -(SERVED_KEEP + 1))
        tag = f"{query.bucket}/{query.strategy}"
        pipe.hset(served_by_key(query.user_id), mapping={str(i.tweet_id): tag for i in items})
        for field, amount in feedback_increments(query.strategy, len(items), 0).items():
            if amount:
                pipe.hincrbyfloat(adaptation_key(query.bucket), field, amount)
        await pipe.execute()


class RankedReader:
    def __init__(self, redis: Redis, reader: TimelineReader, store: TimelineStore, frozen: bool) -> None:
        self._redis = redis
        self._reader = reader
        self._store = store
        self._frozen = frozen
        self._rng = random.Random()

    async def adaptation(self) -> Adaptation:
        pipe = self._redis.pipeline(transaction=False)
        buckets = Adaptation().buckets
        for bucket in buckets:
            pipe.hgetall(adaptation_key(bucket))
        rows = await pipe.execute()
        adaptation = Adaptation(state={b: _floats(row) for b, row in zip(buckets, rows, strict=True)})
        if self._frozen:
            adaptation.freeze()
        return adaptation

    async def ranked(self, user_id: int, limit: int, max_id: int | None, now_ms: int) -> dict[str, Any]:
        context, rebuilt = await self._reader.prepare(user_id, now_ms)
        bucket, strategy, weights = (await self.adaptation()).plan(user_id, self._rng)
        query = Query(user_id, limit, max_id, now_ms, bucket, strategy, weights)
        reads = ServingReads(self._redis)
        candidates = RedisCandidates(self._redis, self._store, reads, context)
        config = ranked_pipeline_config(
            timeline=candidates.timeline,
            celebrities=candidates.celebrities,
            trending=candidates.trending,
            hydrator=RedisHydrator(self._redis, context),
            recorder=RedisServedRecorder(self._redis),
        )
        page = await RankedPipeline(config).run(query)
        body = page.to_json()
        tweets = await reads.tweets(item.tweet_id for item in page.items)
        for item in body["items"]:
            item["tweet_id_str"] = str(item["tweet_id"])
            item["text"] = tweets.get(item["tweet_id"], {}).get("text", "")
        # The next page ranks what is older than this page's oldest item; the "previously served"
        # filter then drops what this page already showed.
        full = len(page.items) == limit
        next_max_id = min(item.tweet_id for item in page.items) if full else None
        return {**body, "user_id": user_id, "rebuilt": rebuilt, "next_max_id": next_max_id}


# Engagements that count as the served tweet having worked, for the bandit's reward.
POSITIVE_KINDS = frozenset(
    {"like", "retweet", "reply", "quote", "bookmark", "share", "click", "profile_click", "video_view"}
)


async def record_feedback(redis: Redis, engagements: Sequence[tuple[int, int]]) -> int:
    """Credit the bucket and strategy that served each (user, tweet) a positive engagement hit;
    each served tweet is credited once (its served-by entry is removed). Returns the credits."""
    if not engagements:
        return 0
    pipe = redis.pipeline(transaction=False)
    for user, tweet in engagements:
        pipe.hget(served_by_key(user), str(tweet))
    tags = await pipe.execute()
    pipe = redis.pipeline(transaction=False)
    credited = 0
    for (user, tweet), tag in zip(engagements, tags, strict=True):
        if tag is None:
            continue
        bucket, strategy = tag.decode().split("/", 1)
        for field, amount in feedback_increments(strategy, 0, 1).items():
            if amount:
                pipe.hincrbyfloat(adaptation_key(bucket), field, amount)
        pipe.hdel(served_by_key(user), str(tweet))
        credited += 1
    if credited:
        await pipe.execute()
    return credited


async def bucket_metrics(redis: Redis) -> dict[str, dict[str, float]]:
    """Served, engaged and engagement rate per A/B bucket, from the bandit state in Redis."""
    buckets = Adaptation().buckets
    pipe = redis.pipeline(transaction=False)
    for bucket in buckets:
        pipe.hgetall(adaptation_key(bucket))
    rows = await pipe.execute()
    return Adaptation(state={b: _floats(r) for b, r in zip(buckets, rows, strict=True)}).metrics()
