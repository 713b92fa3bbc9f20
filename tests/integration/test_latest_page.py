"""`ServingReads.latest_page` (one script call) against a real Redis: readiness, the rebuild
answer, and pages below `max_id` exact for Snowflake ids past 2**53, whose sorted-set scores
collide."""

from __future__ import annotations

import random

from redis.asyncio import Redis

from streams.serving.connection import shard_tags
from streams.serving.keys import (
    ACTIVE,
    CELEBRITIES,
    authored_key,
    following_key,
    likes_key,
    mutes_key,
    ready_key,
    timeline_key,
    tweet_key,
)
from streams.serving.latest import LatestPage, Rebuild
from streams.serving.view import ServingReads
from streams.timelines.cache import SENTINEL, TimelineCache
from streams.timelines.reader import TimelineReader
from tests.harness import with_redis

BASE_ID = 1_860_000_000_000_000_000  # past 2**53: neighbours share a double score
USER, FRIEND, CELEBRITY, MUTED = 1, 2, 3, 4
NOW = 1_800_000_000_000
PARTITIONS = 4
LIMIT = 20
WANT = 30


async def mark_ready(redis: Redis, partitions: range) -> None:
    for shard in await shard_tags(redis):
        for p in partitions:
            await redis.set(ready_key(p, shard), 1)


async def ready_view(redis: Redis) -> None:
    await mark_ready(redis, range(PARTITIONS))


async def read(redis: Redis, max_id: int | None = None) -> LatestPage | Rebuild | None:
    return await ServingReads(redis).latest_page(USER, NOW, NOW - 1000, PARTITIONS, LIMIT, WANT, max_id)


def test_not_ready_until_every_partition_is_in_and_the_user_is_marked_active_anyway(
    redis_url: str,
) -> None:
    async def body(redis: Redis) -> None:
        await mark_ready(redis, range(PARTITIONS - 1))
        assert await read(redis) is None
        assert await redis.zscore(ACTIVE, str(USER)) == NOW

    with_redis(redis_url, body)


def test_a_missing_timeline_or_an_inactive_user_asks_for_a_rebuild_with_the_follows(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        await ready_view(redis)
        await redis.sadd(following_key(USER), FRIEND, CELEBRITY)
        await redis.sadd(CELEBRITIES, CELEBRITY)
        assert await read(redis) == Rebuild({FRIEND, CELEBRITY}, {CELEBRITY})  # no timeline
        await redis.zadd(timeline_key(USER), {SENTINEL: 0})
        await redis.zadd(ACTIVE, {str(USER): NOW - 1001})  # before `active since`
        assert isinstance(await read(redis), Rebuild)
        # That read marked the user active: the next one is a page.
        assert isinstance(await read(redis), LatestPage)

    with_redis(redis_url, body)


def test_pages_below_max_id_are_exact_where_scores_collide(redis_url: str) -> None:
    """Each page holds the newest LIMIT of the newest WANT candidates of both sources below
    max_id, less the deleted tweets and the muted author's, with text and like counts."""
    rng = random.Random(7)
    pushed = sorted(rng.sample(range(BASE_ID, BASE_ID + 2_000, 2), 400))
    pulled = sorted(rng.sample(range(BASE_ID + 1, BASE_ID + 2_000, 2), 300))
    deleted, muted = set(pushed[1::4]), set(pushed[2::4])

    async def body(redis: Redis) -> None:
        await seed(redis, pushed, {CELEBRITY: pulled}, deleted)
        for t in muted:
            await redis.hset(tweet_key(t), "author_id", MUTED)
        for max_id in (None, pushed[-1], pushed[200], pulled[100], pulled[3], BASE_ID + 1):
            page = await read(redis, max_id)
            assert isinstance(page, LatestPage)
            below = [t for t in pushed + pulled if max_id is None or t < max_id]
            newest = sorted(below, reverse=True)[:WANT]
            shown = [t for t in newest if t not in deleted | muted][:LIMIT]
            expected = [
                (t, FRIEND, True, f"t{t}", liked(t))
                if t in set(pushed)
                else (t, CELEBRITY, False, "", liked(t))
                for t in shown
            ]
            assert page.rows == expected, max_id
            assert page.more == (len(below) > WANT), max_id

    with_redis(redis_url, body)


def test_a_page_drawn_from_one_of_many_celebrities_reads_that_one_on(redis_url: str) -> None:
    """Each source is read a chunk at a time; when one celebrity of six has the newest tweets,
    the page is theirs, read on past its first chunk, and the rest in order after them."""
    others = {c: [BASE_ID + 1_000 * c + i for i in range(10)] for c in range(11, 16)}
    busy = [BASE_ID + 100_000 + i for i in range(100)]
    pushed = [BASE_ID + i for i in range(5)]

    async def body(redis: Redis) -> None:
        await seed(redis, pushed, {CELEBRITY: busy, **others}, set())
        await redis.sadd(following_key(USER), *others)
        await redis.sadd(CELEBRITIES, *others)
        page = await read(redis)
        assert isinstance(page, LatestPage)
        assert [row[0] for row in page.rows] == sorted(busy, reverse=True)[:LIMIT]
        assert page.more
        older = await read(redis, busy[0])
        assert isinstance(older, LatestPage)
        everything_older = [t for ids in others.values() for t in ids] + pushed
        assert [row[0] for row in older.rows] == sorted(everything_older, reverse=True)[:LIMIT]
        assert [row[2] for row in older.rows] == [
            t in pushed for t in sorted(everything_older, reverse=True)[:LIMIT]
        ]

    with_redis(redis_url, body)


def test_a_page_that_filters_leave_short_reads_on_until_it_is_full(redis_url: str) -> None:
    """60 of the newest 80 tweets are gone (deleted), more than the read's margin: the page still
    holds the 50 newest that are left, as the merge rules over everything in Redis say."""
    timeline = [BASE_ID + 10 * i for i in range(300)]
    gone = set(timeline[-80:][:60])

    async def body(redis: Redis) -> None:
        await seed(redis, timeline, {}, gone)
        reader = TimelineReader(ServingReads(redis), TimelineCache(redis, 800), PARTITIONS, 1, 800)
        page = await reader.latest(USER, 50, None, NOW)
        expected = [t for t in sorted(timeline, reverse=True) if t not in gone][:50]
        assert [item["tweet_id"] for item in page.items] == expected
        assert [item["like_count"] for item in page.items] == [liked(t) for t in expected]
        assert page.next_max_id == expected[-1]

    with_redis(redis_url, body)


def liked(tweet_id: int) -> int:
    """How many likes `seed` gives a tweet: none for two in three."""
    return tweet_id % 7 + 1 if tweet_id % 3 == 0 else 0


async def seed(redis: Redis, pushed: list[int], pulled: dict[int, list[int]], deleted: set[int]) -> None:
    """A ready view; the user active, following FRIEND and CELEBRITY, muting MUTED; FRIEND's
    tweets `pushed` in the timeline, those in `deleted` gone; the celebrities' tweets, no text;
    like counts as `liked` says."""
    await ready_view(redis)
    await redis.zadd(ACTIVE, {str(USER): NOW})
    await redis.sadd(following_key(USER), FRIEND, CELEBRITY)
    await redis.sadd(CELEBRITIES, CELEBRITY)
    await redis.sadd(mutes_key(USER), MUTED)
    await redis.zadd(timeline_key(USER), {SENTINEL: 0, **{str(t): t for t in pushed}})
    for t in set(pushed) - deleted:
        await redis.hset(tweet_key(t), mapping={"author_id": FRIEND, "text": f"t{t}"})
    for celebrity, ids in pulled.items():
        await redis.zadd(authored_key(celebrity), {str(t): t for t in ids})
        for t in ids:
            await redis.hset(tweet_key(t), mapping={"author_id": celebrity})
    for t in [*pushed, *(t for ids in pulled.values() for t in ids)]:
        if liked(t):
            await redis.set(likes_key(t), liked(t))
