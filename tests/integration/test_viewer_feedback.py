"""The viewer-feedback learner against a real Redis: the fitter learns each seen served item into
its viewer's sums exactly once and only in a learning bucket; the sums fade, are pruned, and read
back as the lifts the pure math gives."""

from __future__ import annotations

from typing import cast

import pytest
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from streams.mixer.adaptation import bucket_of
from streams.mixer.calibration import SegmentedCalibrator, ServedPrediction, learn_outcome
from streams.mixer.components import PageItem
from streams.mixer.features import KINDS
from streams.mixer.feedback import FEEDBACK_HALF_LIFE_MS, Evidence, expected_engaged, feedback_lift
from streams.redis_keys import CALIBRATION, feedback_key
from streams.served_outcomes import FitRound, fit_calibration, mark_outcomes, record_served_predictions
from streams.viewer_feedback import KEEP_MS, decode_lifts, lift_fields, queue_learning
from tests.harness import with_redis

WINDOW_MS = 60_000
SERVED_MS = 1_000_000
LEARNER, CONTROL_USER = 2, 1  # in the adaptive and the control bucket
HALF = FEEDBACK_HALF_LIFE_MS


def test_the_users_are_in_the_buckets_the_tests_say() -> None:
    assert (bucket_of(LEARNER), bucket_of(CONTROL_USER)) == ("adaptive", "control")


async def stored(redis: Redis, user: int) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in (await redis.hgetall(feedback_key(user))).items()}


async def learn(redis: Redis, user: int, at_ms: int, seen: dict[int, Evidence]) -> None:
    pipe = redis.pipeline(transaction=True)
    queue_learning(pipe, user, at_ms, seen)
    await pipe.execute()


def test_sums_fade_to_the_newest_learning_and_negligible_ones_are_dropped(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        await learn(redis, LEARNER, 0, {7: Evidence(1.0, 0.5), 8: Evidence(0.0, 0.002)})
        assert await stored(redis, LEARNER) == pytest.approx(
            {"7.e": 1.0, "7.x": 0.5, "8.x": 0.002, "viewer.e": 1.0, "viewer.x": 0.502, "ts": 0.0}
        )  # 8.e is 0: below NEGLIGIBLE, not stored
        await learn(redis, LEARNER, HALF, {7: Evidence(0.0, 0.25), 9: Evidence(2.0, 1.0)})
        # a half-life later: halved, then added; 8.x halves to 0.001 and stays, just
        assert await stored(redis, LEARNER) == pytest.approx(
            {
                "7.e": 0.5,
                "7.x": 0.5,
                "8.x": 0.001,
                "9.e": 2.0,
                "9.x": 1.0,
                "viewer.e": 2.5,
                "viewer.x": 1.501,
                "ts": float(HALF),
            }
        )
        # an increment from a clock behind the stored one is added unfaded, and ts does not go back
        await learn(redis, LEARNER, HALF // 2, {9: Evidence(1.0, 0.0)})
        after = await stored(redis, LEARNER)
        assert after["9.e"] == pytest.approx(3.0) and after["ts"] == HALF
        await learn(redis, LEARNER, 3 * HALF, {})  # nothing to learn: nothing written
        assert (await stored(redis, LEARNER))["ts"] == HALF
        await learn(redis, LEARNER, 2 * HALF, {9: Evidence(0.0, 0.0)})
        assert "8.x" not in await stored(redis, LEARNER)  # 0.0005 now: dropped
        assert await redis.pttl(feedback_key(LEARNER)) == pytest.approx(KEEP_MS, abs=5_000)

    with_redis(redis_url, body)


def test_lifts_read_back_as_the_math_gives_them(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        await learn(redis, LEARNER, 0, {7: Evidence(3.0, 1.0), 8: Evidence(0.0, 2.0)})
        values = await redis.hmget(feedback_key(LEARNER), lift_fields([7, 8, 9]))
        lifts = decode_lifts(values, [7, 8, 9], now_ms=HALF)
        viewer = Evidence(3.0, 3.0).faded(0.5)
        assert lifts == pytest.approx(
            {7: feedback_lift(Evidence(1.5, 0.5), viewer), 8: feedback_lift(Evidence(0.0, 1.0), viewer)}
        )
        assert lifts[7] > 1.0 > lifts[8]  # and 9, never seen, is left at 1
        # learning frozen: read as learnt, not faded
        frozen = decode_lifts(values, [7, 8, 9], now_ms=None)
        assert frozen == pytest.approx(
            {
                7: feedback_lift(Evidence(3.0, 1.0), Evidence(3.0, 3.0)),
                8: feedback_lift(Evidence(0.0, 2.0), Evidence(3.0, 3.0)),
            }
        )
        assert frozen != pytest.approx(lifts)
        assert decode_lifts(await redis.hmget(feedback_key(99), lift_fields([7])), [7], HALF) == {}

    with_redis(redis_url, body)


def item(tweet: int, author: int, raw: float) -> PageItem:
    raws = {kind: raw / (i + 1) for i, kind in enumerate(KINDS)}
    return PageItem(tweet, author, "push", True, 1.0, "", raws, raws)


def test_the_fitter_learns_seen_items_of_learning_users_once(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        page = [item(101, 7, 0.05), item(102, 7, 0.2), item(103, 8, 0.1), item(104, 8, 0.02)]
        for user in (LEARNER, CONTROL_USER):
            pipe = redis.pipeline(transaction=False)
            record_served_predictions(pipe, user, SERVED_MS, page, WINDOW_MS)
            await pipe.execute()
            # 101 liked, 102 seen only, 103 marked not interested, 104 never seen
            await mark_outcomes(
                redis,
                [(user, 101, "like"), (user, 102, "impression"), (user, 103, "not_interested")],
            )
        fit_at = SERVED_MS + WINDOW_MS
        assert await fit_calibration(redis, fit_at, WINDOW_MS) == FitRound(learnt=6, not_learnt=2)
        x = {i.tweet_id: expected_engaged([i.raw_predictions[k] for k in KINDS]) for i in page}
        assert await stored(redis, LEARNER) == pytest.approx(
            {
                "7.e": 1.0,
                "7.x": x[101] + x[102],
                "8.x": x[103],
                "viewer.e": 1.0,
                "viewer.x": x[101] + x[102] + x[103],
                "ts": float(fit_at),
            }
        )
        assert await redis.exists(feedback_key(CONTROL_USER)) == 0  # control never learns
        before = await stored(redis, LEARNER)
        assert await fit_calibration(redis, fit_at, WINDOW_MS) == FitRound()  # learnt once
        assert await stored(redis, LEARNER) == before

    with_redis(redis_url, body)


def test_expectations_are_the_current_fits_calibrated_predictions(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        fitted = SegmentedCalibrator()
        for _ in range(50):  # in-network likes far above what was predicted: a fit that raises them
            learn_outcome(fitted, ServedPrediction(True, (0.02,) * len(KINDS)), {"like", "click"})
        await redis.hset(CALIBRATION, mapping=cast(dict[FieldT, EncodableT], fitted.to_dict()))
        served = item(101, 7, 0.05)
        pipe = redis.pipeline(transaction=False)
        record_served_predictions(pipe, LEARNER, SERVED_MS, [served], WINDOW_MS)
        await pipe.execute()
        await mark_outcomes(redis, [(LEARNER, 101, "impression")])
        assert await fit_calibration(redis, SERVED_MS + WINDOW_MS, WINDOW_MS) == FitRound(learnt=1)
        raw = [served.raw_predictions[k] for k in KINDS]
        calibrated = ServedPrediction(True, tuple(raw)).calibrated(fitted.params())
        assert calibrated[0] > raw[0] * 1.2  # not vacuous: the fit moves the like prediction
        assert (await stored(redis, LEARNER))["7.x"] == pytest.approx(expected_engaged(calibrated))

    with_redis(redis_url, body)


def test_frozen_learning_learns_no_feedback(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        pipe = redis.pipeline(transaction=False)
        record_served_predictions(pipe, LEARNER, SERVED_MS, [item(101, 7, 0.05)], WINDOW_MS)
        await pipe.execute()
        await mark_outcomes(redis, [(LEARNER, 101, "like")])
        fitted = await fit_calibration(redis, SERVED_MS + WINDOW_MS, WINDOW_MS, learn=False)
        assert fitted == FitRound(not_learnt=1)
        assert await redis.exists(feedback_key(LEARNER)) == 0

    with_redis(redis_url, body)
