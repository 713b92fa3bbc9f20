"""The bandit's state in a real Redis: increments from many writers, and the discount that fades
the arms (not the A/B totals) once per interval however many workers run it."""

from __future__ import annotations

import asyncio

import pytest
import redis as sync_redis
from redis.asyncio import Redis

from streams.mixer.adaptation import ADAPTIVE, BANDIT_HALF_LIFE_MS, discounted_fields, feedback_increments
from streams.ranked_reader import DISCOUNT, DISCOUNTED_AT, discount_bandit, load_adaptation
from streams.redis_keys import adaptation_key


def test_discount_halves_the_arms_each_half_life_and_keeps_the_totals(redis_url: str) -> None:
    sync_redis.Redis.from_url(redis_url).flushdb()

    async def main() -> None:
        redis = Redis.from_url(redis_url)
        key = adaptation_key(ADAPTIVE)
        try:
            for field, amount in feedback_increments("cautious", 1_000, 80).items():
                await redis.hincrbyfloat(key, field, amount)
            metrics = (await load_adaptation(redis)).metrics()
            assert await discount_bandit(redis, 0) == 2  # starts the clock: nothing to fade yet
            assert (await load_adaptation(redis)).state[ADAPTIVE].arms["cautious"].served == 1_000

            assert await discount_bandit(redis, BANDIT_HALF_LIFE_MS) == 2
            arm = (await load_adaptation(redis)).state[ADAPTIVE].arms["cautious"]
            assert (arm.served, arm.engaged) == (pytest.approx(500.0), pytest.approx(40.0))
            assert (await load_adaptation(redis)).metrics() == metrics

            # A second discounter that read the clock before the first wrote it changes nothing.
            stale = await redis.eval(
                DISCOUNT, 0, key, DISCOUNTED_AT, "0", "0.5", 1, *discounted_fields(["cautious"])
            )
            assert stale == 0
            assert (await load_adaptation(redis)).state[ADAPTIVE].arms["cautious"].served == pytest.approx(
                500.0
            )

            await discount_bandit(redis, 3 * BANDIT_HALF_LIFE_MS)
            arm = (await load_adaptation(redis)).state[ADAPTIVE].arms["cautious"]
            assert (arm.served, arm.engaged) == (pytest.approx(125.0), pytest.approx(10.0))
        finally:
            await redis.aclose()

    asyncio.run(main())
