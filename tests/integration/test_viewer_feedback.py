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
from streams.mixer.viewer_feedback import FEEDBACK_HALF_LIFE_MS, Evidence, expected_engaged, feedback_lift
from streams.ranked.feedback_store import KEEP_MS, decode_lifts, lift_fields, queue_learning
from streams.ranked.served_outcomes import FitRound, fit_calibration, mark_outcomes, record_served_predictions
from streams.serving.keys import CALIBRATION, feedback_key
from streams.serving.scripts import execute
from tests.harness import with_redis

WINDOW_MS = 60_000
SERVED_MS = 1_000_000
LEARNER, CONTROL_USER = 2, 1  # in the adaptive and the control bucket
HALF = FEEDBACK_HALF_LIFE_MS


def test_the_users_are_in_the_buckets_the_tests_say() -> None:
    assert (bucket_of(LEARNER), bucket_of(CONTROL_USER)) == ("adaptive", "control")


async def stored(redis: Redis, user: int) -> dict[str, tuple[float, ...]]:
    """Field -> (engaged, expected, ts)."""
    raw = await redis.hgetall(feedback_key(user))
    return {k.decode(): tuple(float(x) for x in v.split()) for k, v in raw.items()}


async def learn(redis: Redis, user: int, at_ms: int, seen: dict[int, Evidence]) -> None:
    pipe = redis.pipeline(transaction=True)
    queue_learning(pipe, user, at_ms, seen)
    await execute(pipe)


def test_each_sum_fades_to_its_own_latest_learning_and_faded_ones_are_swept(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body(redis: Redis) -> None:
        await learn(redis, LEARNER, 0, {7: Evidence(1.0, 0.5), 8: Evidence(0.0, 0.0018)})
        assert await stored(redis, LEARNER) == {
            "7": (1.0, 0.5, 0.0),
            "8": (0.0, 0.0018, 0.0),
            "viewer": pytest.approx((1.0, 0.5018, 0.0)),
        }
        await learn(redis, LEARNER, HALF, {7: Evidence(0.0, 0.25), 9: Evidence(2.0, 1.0)})
        # a half-life later: what is learnt into is halved first; 8, not learnt into, is left as
        # it was, with its own ts
        assert await stored(redis, LEARNER) == {
            "7": pytest.approx((0.5, 0.5, HALF)),
            "8": (0.0, 0.0018, 0.0),
            "9": (2.0, 1.0, HALF),
            "viewer": pytest.approx((2.5, 1.5009, HALF)),  # 0.5018 / 2 + 0.25 + 1
        }
        # an increment from a clock behind a field's is added unfaded, and its ts does not go back
        await learn(redis, LEARNER, HALF // 2, {9: Evidence(1.0, 0.0)})
        assert (await stored(redis, LEARNER))["9"] == (3.0, 1.0, HALF)
        await learn(redis, LEARNER, 3 * HALF, {})  # nothing to learn: nothing written
        assert (await stored(redis, LEARNER))["viewer"][2] == HALF
        # over SWEEP_ABOVE fields a learning drops the sums faded below NEGLIGIBLE: 8 is at 0.00045
        monkeypatch.setattr("streams.ranked.feedback_store.SWEEP_ABOVE", 3)
        await learn(redis, LEARNER, 2 * HALF, {9: Evidence(0.0, 0.0)})
        assert set(await stored(redis, LEARNER)) == {"7", "9", "viewer"}
        assert await redis.pttl(feedback_key(LEARNER)) == pytest.approx(KEEP_MS, abs=5_000)

    with_redis(redis_url, body)


def test_a_value_the_learner_did_not_write_is_ignored_then_overwritten(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        await redis.hset(feedback_key(LEARNER), mapping={"7": "garbage", "viewer": "1 2 0"})
        values = await redis.hmget(feedback_key(LEARNER), lift_fields([7]))
        assert decode_lifts(values, [7], now_ms=0) == {}
        await learn(redis, LEARNER, HALF, {7: Evidence(1.0, 0.5)})
        assert await stored(redis, LEARNER) == {
            "7": (1.0, 0.5, HALF),
            "viewer": pytest.approx((1.5, 1.5, HALF)),
        }

    with_redis(redis_url, body)


def test_lifts_read_back_as_the_math_gives_them(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        await learn(redis, LEARNER, 0, {7: Evidence(3.0, 1.0), 8: Evidence(0.0, 2.0)})
        await learn(redis, LEARNER, HALF, {8: Evidence(0.0, 0.0)})  # 8 and the viewer as of HALF
        values = await redis.hmget(feedback_key(LEARNER), lift_fields([7, 8, 9]))
        lifts = decode_lifts(values, [7, 8, 9], now_ms=2 * HALF)
        viewer = Evidence(3.0, 3.0).faded(0.25)
        assert lifts == pytest.approx(
            {
                7: feedback_lift(Evidence(3.0, 1.0).faded(0.25), viewer),
                8: feedback_lift(Evidence(0.0, 2.0).faded(0.25), viewer),
            }
        )
        assert lifts[7] > 1.0 > lifts[8]  # and 9, never seen, is left at 1
        # learning frozen: read as stored, not faded
        frozen = decode_lifts(values, [7, 8, 9], now_ms=None)
        assert frozen == pytest.approx(
            {
                7: feedback_lift(Evidence(3.0, 1.0), viewer.faded(2.0)),
                8: feedback_lift(Evidence(0.0, 1.0), viewer.faded(2.0)),
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
            await execute(pipe)
            # 101 liked, 102 seen only, 103 marked not interested, 104 never seen
            await mark_outcomes(
                redis,
                [(user, 101, "like"), (user, 102, "impression"), (user, 103, "not_interested")],
            )
        fit_at = SERVED_MS + WINDOW_MS
        assert await fit_calibration(redis, fit_at, WINDOW_MS) == FitRound(learnt=6, not_learnt=2)
        x = {i.tweet_id: expected_engaged([i.raw_predictions[k] for k in KINDS]) for i in page}
        assert await stored(redis, LEARNER) == {
            "7": pytest.approx((1.0, x[101] + x[102], fit_at)),
            "8": pytest.approx((0.0, x[103], fit_at)),
            "viewer": pytest.approx((1.0, x[101] + x[102] + x[103], fit_at)),
        }
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
        await execute(pipe)
        await mark_outcomes(redis, [(LEARNER, 101, "impression")])
        assert await fit_calibration(redis, SERVED_MS + WINDOW_MS, WINDOW_MS) == FitRound(learnt=1)
        raw = [served.raw_predictions[k] for k in KINDS]
        fit = fitted.params()["in_network"]
        calibrated = [fit[kind].apply(r) for kind, r in zip(KINDS, raw, strict=True)]
        assert calibrated[0] > raw[0] * 1.2  # not vacuous: the fit moves the like prediction
        assert (await stored(redis, LEARNER))["7"][1] == pytest.approx(expected_engaged(calibrated))

    with_redis(redis_url, body)


def test_frozen_learning_learns_no_feedback(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        pipe = redis.pipeline(transaction=False)
        record_served_predictions(pipe, LEARNER, SERVED_MS, [item(101, 7, 0.05)], WINDOW_MS)
        await execute(pipe)
        await mark_outcomes(redis, [(LEARNER, 101, "like")])
        fitted = await fit_calibration(redis, SERVED_MS + WINDOW_MS, WINDOW_MS, learn=False)
        assert fitted == FitRound(not_learnt=1)
        assert await redis.exists(feedback_key(LEARNER)) == 0

    with_redis(redis_url, body)
