"""The bandit's state in a real Redis: what a served page records, increments from many writers,
and the discount that fades the arms (not the A/B totals) once per interval however many workers
run it."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from streams.mixer.adaptation import (
    ADAPTIVE,
    BANDIT_HALF_LIFE_MS,
    discounted_fields,
    feedback_increments,
    total_fields,
)
from streams.mixer.components import PageItem, Query
from streams.ranked.bandit_store import (
    DISCOUNT,
    DISCOUNTED_AT,
    discount_bandit,
    load_adaptation,
    record_feedback,
)
from streams.ranked.served_recorder import RedisServedRecorder
from streams.serving.keys import adaptation_key, served_by_key, served_key
from tests.harness import with_redis

KEY = adaptation_key(ADAPTIVE)
USER = 2  # adaptive bucket


def page(*tweets: int) -> list[PageItem]:
    return [PageItem(t, 7, "push", True, 1.0, "followed author", {}) for t in tweets]


def test_a_served_page_is_remembered_credited_and_trimmed(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        recorder = RedisServedRecorder(redis, label_window_ms=600_000, keep=3)
        await recorder.record_served(Query(USER, 2, None, 1_000, ADAPTIVE, "cautious"), page(11, 12))
        await recorder.record_served(Query(USER, 2, None, 2_000, ADAPTIVE, "twitter"), page(13, 14))
        served = await redis.zrange(served_key(USER), 0, -1, withscores=True)
        assert served == [(b"12", 1_000.0), (b"13", 2_000.0), (b"14", 2_000.0)]  # the newest 3
        # The tweet trimmed from the served set is forgotten by the served-by hash too.
        assert await redis.hgetall(served_by_key(USER)) == {
            b"12": b"adaptive/cautious",
            b"13": b"adaptive/twitter",
            b"14": b"adaptive/twitter",
        }
        state = (await load_adaptation(redis)).state[ADAPTIVE]
        assert (state.arms["cautious"].served, state.arms["twitter"].served) == (2, 2)
        # A like on a served tweet credits the arm that served it, once; the trimmed one credits none.
        assert await record_feedback(redis, [(USER, 12), (USER, 12), (USER, 11)]) == 1
        assert (await cautious(redis)) == (2, 1)

    with_redis(redis_url, body)


def test_a_served_by_hash_an_earlier_version_let_grow_is_cleaned_on_the_next_serve(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        await redis.zadd(served_key(USER), {"12": 1_000, "13": 1_000})
        await redis.hset(served_by_key(USER), mapping={str(t): "adaptive/twitter" for t in range(1, 14)})
        recorder = RedisServedRecorder(redis, label_window_ms=600_000, keep=3)
        await recorder.record_served(Query(USER, 1, None, 2_000, ADAPTIVE, "twitter"), page(14))
        assert await redis.hgetall(served_by_key(USER)) == {
            b"12": b"adaptive/twitter",
            b"13": b"adaptive/twitter",
            b"14": b"adaptive/twitter",
        }

    with_redis(redis_url, body)


async def cautious(redis: Redis) -> tuple[float, float]:
    arm = (await load_adaptation(redis)).state[ADAPTIVE].arms["cautious"]
    return arm.served, arm.engaged


def test_discount_halves_the_arms_each_half_life_and_keeps_the_totals(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        for field, amount in feedback_increments("cautious", 1_000, 80).items():
            await redis.hincrbyfloat(KEY, field, amount)
        metrics = (await load_adaptation(redis)).metrics()
        assert await discount_bandit(redis, 0) == 2  # starts the clock: nothing to fade yet
        assert await cautious(redis) == (1_000, 80)

        assert await discount_bandit(redis, BANDIT_HALF_LIFE_MS) == 2
        assert await cautious(redis) == (pytest.approx(500.0), pytest.approx(40.0))
        assert (await load_adaptation(redis)).metrics() == metrics

        # A second discounter that read the clock before the first wrote it changes nothing.
        fields = [*total_fields(), *discounted_fields(["cautious"])]
        assert await DISCOUNT(redis, [KEY], [DISCOUNTED_AT, "0", "0.5", 1, *fields]) == 0
        assert await cautious(redis) == (pytest.approx(500.0), pytest.approx(40.0))

        await discount_bandit(redis, 3 * BANDIT_HALF_LIFE_MS)
        assert await cautious(redis) == (pytest.approx(125.0), pytest.approx(10.0))

    with_redis(redis_url, body)


def test_the_first_discount_gives_a_hash_kept_before_the_totals_its_whole_history(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        # arms counted before totals existed, then one served page after the upgrade
        await redis.hset(KEY, mapping={"twitter.served": 900, "twitter.engaged": 90, "cautious.served": 100})
        for field, amount in feedback_increments("cautious", 50, 5).items():
            await redis.hincrbyfloat(KEY, field, amount)
        assert (await load_adaptation(redis)).metrics()[ADAPTIVE]["served"] == 50
        await discount_bandit(redis, 0)
        assert (await load_adaptation(redis)).metrics()[ADAPTIVE] == {
            "served": 1_050.0,
            "engaged": 95.0,
            "rate": pytest.approx(95 / 1_050),
        }
        assert await cautious(redis) == (150, 5)

    with_redis(redis_url, body)
