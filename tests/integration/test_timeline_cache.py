"""TimelineCache against a real Redis (the session's `redis_url`).

pytest-asyncio is not a dependency: each test runs its coroutine with `asyncio.run`, and the
client is made inside it (a redis.asyncio client belongs to one event loop).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from streams.serving.keys import timeline_key
from streams.timelines import cache as timeline_cache
from streams.timelines.cache import LUA_CHUNK, SENTINEL, TimelineCache
from tests.harness import with_redis

MAX = 50
BASE_ID = 1_860_000_000_000_000_000  # a 2024 Snowflake: beyond 2**53, as real ids are


def run(
    redis_url: str, body: Callable[[TimelineCache, Redis], Awaitable[None]], max_entries: int = MAX
) -> None:
    with_redis(redis_url, lambda client: body(TimelineCache(client, max_entries), client))


async def members(client: Redis, user_id: int) -> list[int]:
    """A timeline's tweet ids, oldest first, sentinel left out."""
    raw: list[Any] = await client.zrange(timeline_key(user_id), 0, -1)
    return [int(m) for m in raw if m != SENTINEL.encode()]


def test_fanout_to_5000_timelines_writes_exactly_the_existing_ones(redis_url: str) -> None:
    users = list(range(1, 5001))
    existing = users[::2]

    async def body(store: TimelineCache, client: Redis) -> None:
        for user in existing:
            await store.replace(user, [])
        tweets = [BASE_ID + i for i in range(3)]
        assert await store.fanout(tweets[0], users) == len(existing)
        assert await store.fanout_many([(tweets[1], users), (tweets[2], users[:1234])]) == len(existing) + 617
        for user in users:
            got = await members(client, user)
            if user % 2 == 0:
                assert got == [] and not await store.exists(user)
            else:
                want = tweets[:2] + ([tweets[2]] if user <= 1234 else [])
                assert got == want, user

    run(redis_url, body)


def test_replays_never_duplicate(redis_url: str) -> None:
    async def body(store: TimelineCache, client: Redis) -> None:
        users = list(range(1, 2500))
        for user in users:
            await store.replace(user, [])
        for _ in range(3):
            assert await store.fanout(BASE_ID + 7, users) == len(users)
            await store.fanout_many([(BASE_ID + 8, users), (BASE_ID + 7, users)])
            assert await store.merge(1, [BASE_ID + 7, BASE_ID + 9]) >= 0
        for user in users:
            assert await client.zcard(timeline_key(user)) == (4 if user == 1 else 3)
            assert await store.read(user, 10) == ([BASE_ID + 9] if user == 1 else []) + [
                BASE_ID + 8,
                BASE_ID + 7,
            ]

    run(redis_url, body)


def test_trimming_keeps_the_newest_entries(redis_url: str) -> None:
    async def body(store: TimelineCache, client: Redis) -> None:
        rng = random.Random(5)
        # Ids a few apart share a double score: the trim must still go by exact id.
        ids = [BASE_ID + rng.randrange(10_000) for _ in range(400)]
        await store.replace(1, [])
        await store.replace(2, [])
        for tweet_id in ids:
            await store.fanout(tweet_id, [1, 2])
        newest = sorted(set(ids), reverse=True)[:MAX]
        for user in (1, 2):
            assert await store.read(user, 200) == newest
            assert await client.zcard(timeline_key(user)) == MAX + 1
        # A tweet older than all kept ones is not kept.
        await store.fanout(BASE_ID - 1, [1])
        assert await store.read(1, 200) == newest
        # merge and replace trim too.
        await store.merge(3, ids)
        assert await store.read(3, 200) == newest
        await store.replace(4, ids)
        assert await store.read(4, 200) == newest

    run(redis_url, body)


def test_only_existing_skips_missing_timelines_and_the_author_write_creates(redis_url: str) -> None:
    async def body(store: TimelineCache, client: Redis) -> None:
        await store.replace(2, [BASE_ID])
        assert await store.fanout(BASE_ID + 1, [1, 2, 3]) == 1
        assert not await store.exists(1) and not await store.exists(3)
        assert await store.read(1, 10) is None
        assert await store.fanout(BASE_ID + 1, [1], only_existing=False) == 1
        assert await store.read(1, 10) == [BASE_ID + 1]
        assert await store.read(2, 10) == [BASE_ID + 1, BASE_ID]
        assert await store.merge(3, [BASE_ID], only_existing=True) == -1
        assert not await store.exists(3)
        assert await store.merge(3, [BASE_ID]) == 1
        assert await store.read(3, 10) == [BASE_ID]

    run(redis_url, body)


def test_remove_takes_tweets_out_and_leaves_timelines_materialised(redis_url: str) -> None:
    async def body(store: TimelineCache, client: Redis) -> None:
        users = list(range(1, LUA_CHUNK * 2 + 10))
        for user in users:
            await store.replace(user, [BASE_ID + 1, BASE_ID + 2, BASE_ID + 3])
        assert await store.remove([BASE_ID + 2], users + [999_999]) == len(users)
        assert await store.remove([BASE_ID + 2], users) == 0, "a replayed delete removes nothing"
        assert await store.remove([BASE_ID + 1, BASE_ID + 3], [5]) == 2
        assert await store.read(5, 10) == [], "emptied, still materialised"
        assert await store.read(6, 10) == [BASE_ID + 3, BASE_ID + 1]
        assert not await store.exists(999_999)
        # Many ids at once (past one ZREM's worth): an unfollow of a prolific author.
        many = [BASE_ID + 100 + i for i in range(2500)]
        await store.merge(7, many)
        assert await store.remove(many, [7]) == MAX
        assert await store.read(7, 10) == [], "the merge had trimmed the older entries away"

    run(redis_url, body)


def test_replace_sets_exactly_the_given_entries(redis_url: str) -> None:
    async def body(store: TimelineCache, client: Redis) -> None:
        await store.replace(1, [BASE_ID + 1, BASE_ID + 2])
        await store.replace(1, [BASE_ID + 5, BASE_ID + 3, BASE_ID + 5])
        assert await store.read(1, 10) == [BASE_ID + 5, BASE_ID + 3]
        await store.replace(1, [])
        assert await store.read(1, 10) == []
        assert await store.exists(1)

    run(redis_url, body)


def test_paging_with_max_id_walks_the_whole_timeline_once(redis_url: str) -> None:
    async def body(store: TimelineCache, client: Redis) -> None:
        rng = random.Random(9)
        # Dense ids: many share a double score with their neighbours, the case paging must survive.
        ids = sorted({BASE_ID + rng.randrange(3000) for _ in range(700)}, reverse=True)
        await store.replace(1, ids)
        for limit in (1, 7, 50, 200):
            walked: list[int] = []
            max_id = None
            while True:
                page = await store.read(1, limit, max_id)
                assert page is not None
                walked += page
                if len(page) < limit:
                    break
                max_id = page[-1]
            assert walked == ids, limit
        assert await store.read(1, 5, ids[3]) == ids[4:9]
        assert await store.read(1, 5, ids[-1]) == []
        assert await store.read(1, 5, 1) == []

    run(redis_url, body, max_entries=800)


def test_read_of_a_missing_timeline_is_none(redis_url: str) -> None:
    async def body(store: TimelineCache, client: Redis) -> None:
        assert await store.read(42, 10) is None
        assert await store.read(42, 10, BASE_ID) is None
        assert not await store.exists(42)

    run(redis_url, body)


def test_scripts_are_reloaded_after_a_script_flush(redis_url: str) -> None:
    async def body(store: TimelineCache, client: Redis) -> None:
        await store.replace(1, [])
        assert await store.fanout(BASE_ID, [1]) == 1
        await client.script_flush()
        assert await store.fanout_many([(BASE_ID + 1, [1] * 5000)]) == 5000
        assert await store.read(1, 10) == [BASE_ID + 1, BASE_ID]

    run(redis_url, body)


def test_fanout_many_matches_a_model_with_overlapping_followers(redis_url: str) -> None:
    """Random batches (followers shared between tweets, repeats, replays) against plain sets."""

    async def body(store: TimelineCache, client: Redis) -> None:
        rng = random.Random(13)
        users = list(range(1, 801))
        model: dict[int, set[int]] = {}
        for user in rng.sample(users, 500):
            await store.replace(user, [])
            model[user] = set()
        tweet_ids = [BASE_ID + rng.randrange(20_000) for _ in range(300)]
        for start in range(0, len(tweet_ids), 30):
            items = [(t, rng.sample(users, rng.randint(0, 400))) for t in tweet_ids[start : start + 30]]
            items.append(items[0])  # a replay inside the batch
            expected = sum(1 for t, followers in items for u in followers if u in model)
            assert await store.fanout_many(items) == expected
            for t, followers in items:
                for u in followers:
                    if u in model:
                        model[u] = set(sorted(model[u] | {t})[-MAX:])
        for user in users:
            want = sorted(model[user], reverse=True) if user in model else None
            assert await store.read(user, MAX) == want, user

    run(redis_url, body)


def test_fanout_many_splits_big_groups(redis_url: str) -> None:
    """More tweets for one timeline than one ZADD may carry, and more than one call carries."""

    async def body(store: TimelineCache, client: Redis) -> None:
        await store.replace(1, [])
        await store.replace(2, [])
        tweets = [BASE_ID + i for i in range(2500)]
        assert await store.fanout_many([(t, [1, 2, 3]) for t in tweets]) == 2 * len(tweets)
        assert await store.read(1, 200) == tweets[::-1][:MAX]
        assert await store.read(2, 200) == tweets[::-1][:MAX]
        assert await store.read(3, 200) is None

    run(redis_url, body)


def test_works_without_hiredis(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timeline_cache, "_hiredis_pack", None)

    async def body(store: TimelineCache, client: Redis) -> None:
        await store.replace(1, [])
        assert await store.fanout_many([(BASE_ID, [1, 2]), (BASE_ID + 1, [1])]) == 2
        assert await store.remove([BASE_ID], [1]) == 1
        assert await store.read(1, 10) == [BASE_ID + 1]

    run(redis_url, body)


def test_an_error_in_one_call_is_raised_and_the_rest_still_apply(redis_url: str) -> None:
    async def body(store: TimelineCache, client: Redis) -> None:
        users = list(range(1, 3001))
        for user in users:
            await store.replace(user, [])
        await client.delete(timeline_key(1500))
        await client.set(timeline_key(1500), "not a sorted set")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await store.fanout(BASE_ID, users)
        assert await store.read(2999, 10) == [BASE_ID], "the calls after the failed one ran"
        assert await store.read(1, 10) == [BASE_ID]
        # The connection is still in step: the next answers belong to the next requests.
        assert await store.fanout(BASE_ID + 1, users[:1000]) == 1000
        assert await store.read(1, 10) == [BASE_ID + 1, BASE_ID]

    run(redis_url, body)
