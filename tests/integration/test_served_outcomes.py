"""The calibration's data path against a real Redis: served items recorded with their raw
predictions, outcomes marked, matured items learnt exactly once, and the fit the scorer reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from streams.mixer.adaptation import bucket_of
from streams.mixer.calibration import SegmentedCalibrator, ServedPrediction, learn_outcome
from streams.mixer.components import PageItem
from streams.mixer.features import KINDS
from streams.mixer.viewer_feedback import expected_engaged
from streams.ranked.served_outcomes import (
    FitRound,
    fit_calibration,
    load_calibration,
    load_calibrator,
    mark_outcomes,
    record_served_predictions,
)
from streams.serving.keys import CALIBRATION_PENDING, calibration_served_key, feedback_key
from streams.serving.scripts import execute
from tests.harness import with_redis

WINDOW_MS = 60_000
SERVED_MS = 1_000_000


def item(tweet: int, in_network: bool, raw: float) -> PageItem:
    raws = {kind: raw / (i + 1) for i, kind in enumerate(KINDS)}
    return PageItem(tweet, 7, "push" if in_network else "trending", in_network, 1.0, "", raws, raws)


async def serve(redis: Redis, user: int, items: list[PageItem], at_ms: int = SERVED_MS) -> None:
    pipe = redis.pipeline(transaction=False)
    record_served_predictions(pipe, user, at_ms, items, WINDOW_MS)
    await execute(pipe)


def served_as(i: PageItem) -> ServedPrediction:
    return ServedPrediction(i.in_network, tuple(i.raw_predictions[k] for k in KINDS), i.author_id)


def test_matured_outcomes_are_learnt_once_and_forgotten(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        page = [item(101, True, 0.05), item(102, True, 0.2), item(103, False, 0.1), item(104, True, 0.02)]
        await serve(redis, 1, page)
        later = item(105, True, 0.3)
        await serve(redis, 1, [later], at_ms=SERVED_MS + WINDOW_MS)  # not matured at the fit below
        await mark_outcomes(
            redis,
            [
                (1, 101, "impression"),
                (1, 101, "like"),
                (1, 102, "impression"),
                (1, 102, "profile_click"),  # kinds with an underscore travel whole
                (1, 103, "click"),  # an engagement without an impression still says it was seen
                (1, 103, "click"),  # a replayed event marks nothing twice
                (1, 999, "like"),  # never served: ignored
                (1, 101, "bookmark"),  # not a predicted kind: ignored
                (2, 101, "like"),  # served to someone else: ignored
            ],
        )
        # 104 was never seen (no impression, no engagement): it says nothing about the predictions
        fitted = await fit_calibration(redis, SERVED_MS + WINDOW_MS, WINDOW_MS)
        assert fitted == FitRound(learnt=3, not_learnt=1, lost=0)

        reference = SegmentedCalibrator()
        outcomes = {"impression", "like"}, {"impression", "profile_click"}, {"click"}
        for i, done in zip(page, outcomes, strict=False):
            learn_outcome(reference, served_as(i), done)  # members sort as "1:101" < "1:102" < "1:103"
        got = await load_calibrator(redis)
        assert got.to_dict() == pytest.approx(reference.to_dict())
        assert got.segments["out_of_network"].learnt("click") == 1
        assert got.segments["in_network"].learnt("like") == 2
        assert await load_calibration(redis) == reference.params()

        # learnt items are gone: a second fit at the same time learns nothing more
        assert await fit_calibration(redis, SERVED_MS + WINDOW_MS, WINDOW_MS) == FitRound()
        assert await redis.hkeys(calibration_served_key(1)) == [b"105"]
        assert await redis.zrange(CALIBRATION_PENDING, 0, -1) == [b"1:105"]

    with_redis(redis_url, body)


def test_lost_records_and_frozen_learning_forget_without_learning(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        await serve(redis, 1, [item(101, True, 0.05)])
        await serve(redis, 2, [item(201, True, 0.05), item(202, False, 0.05)])
        await mark_outcomes(redis, [(1, 101, "like"), (2, 201, "like"), (2, 202, "impression")])
        assert await redis.pttl(calibration_served_key(1)) == pytest.approx(2 * WINDOW_MS, abs=5_000)
        await redis.delete(calibration_served_key(1))  # expired: its user was not served again
        fitted = await fit_calibration(redis, SERVED_MS + WINDOW_MS, WINDOW_MS, learn=False)
        assert fitted == FitRound(learnt=0, not_learnt=2, lost=1)
        assert await redis.exists(calibration_served_key(2), CALIBRATION_PENDING) == 0
        assert (await load_calibrator(redis)).to_dict() == SegmentedCalibrator().to_dict()

    with_redis(redis_url, body)


def test_more_matured_items_than_a_round_are_all_learnt(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("streams.ranked.served_outcomes.FIT_BATCH", 7)

    async def body(redis: Redis) -> None:
        page = [item(100 + i, True, 0.1) for i in range(20)]
        await serve(redis, 1, page)
        await mark_outcomes(redis, [(1, i.tweet_id, "impression") for i in page])
        assert await fit_calibration(redis, SERVED_MS + WINDOW_MS, WINDOW_MS) == FitRound(learnt=20)
        assert (await load_calibrator(redis)).segments["in_network"].learnt("like") == 20

    with_redis(redis_url, body)


def test_a_tweet_served_again_keeps_its_first_prediction_and_place(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        first, again = item(101, True, 0.05), item(101, True, 0.3)
        await serve(redis, 1, [first])
        await mark_outcomes(redis, [(1, 101, "like")])
        await serve(redis, 1, [again, item(102, True, 0.1)], at_ms=SERVED_MS + WINDOW_MS // 2)
        assert await redis.hget(calibration_served_key(1), "101") == served_as(first).pack().encode()
        assert await redis.zscore(CALIBRATION_PENDING, "1:101") == SERVED_MS
        # 101 matures on its first serve's clock; 102, served later, not yet
        assert await fit_calibration(redis, SERVED_MS + WINDOW_MS, WINDOW_MS) == FitRound(learnt=1)
        reference = SegmentedCalibrator()
        learn_outcome(reference, served_as(first), {"like"})
        assert (await load_calibrator(redis)).to_dict() == pytest.approx(reference.to_dict())
        assert await redis.zrange(CALIBRATION_PENDING, 0, -1) == [b"1:102"]

    with_redis(redis_url, body)


def test_the_queue_and_each_users_records_stay_bounded(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("streams.ranked.served_outcomes.MAX_PENDING_PER_USER", 3)

    async def body(redis: Redis) -> None:
        await serve(redis, 1, [item(100 + i, True, 0.1) for i in range(5)])
        assert await redis.hlen(calibration_served_key(1)) == 5  # a page at once; the cap stops the next
        await serve(redis, 1, [item(200, True, 0.1)])
        assert not await redis.hexists(calibration_served_key(1), "200")
        # no fitter ran: entries older than two label windows leave the queue with the next record
        await serve(redis, 2, [item(300, True, 0.1)], at_ms=SERVED_MS + 2 * WINDOW_MS + 1)
        assert await redis.zrange(CALIBRATION_PENDING, 0, -1) == [b"2:300"]

    with_redis(redis_url, body)


class ExecAfter:
    """A real client whose transactions run `first` just before their EXEC: a second fitter that
    commits between this one's reads and its commit."""

    def __init__(self, redis: Redis, first: Callable[[], Awaitable[Any]]) -> None:
        self._redis = redis
        self._first = first

    def pipeline(self, transaction: bool = True) -> Pipeline:
        pipe = self._redis.pipeline(transaction=transaction)
        execute = pipe.execute

        async def first_then_execute(raise_on_error: bool = True) -> list[Any]:
            await self._first()
            return await execute(raise_on_error)

        pipe.execute = first_then_execute  # type: ignore[method-assign]
        return pipe


def test_a_fitter_overtaken_by_another_commits_nothing(redis_url: str) -> None:
    user = 2  # in the learning bucket: the viewer-feedback learner commits with the fit, or not
    assert bucket_of(user) == "adaptive"

    async def body(redis: Redis) -> None:
        early, late = item(101, True, 0.05), item(102, True, 0.2)
        await serve(redis, user, [early])
        await serve(redis, user, [late], at_ms=SERVED_MS + WINDOW_MS // 2)
        await mark_outcomes(redis, [(user, 101, "impression"), (user, 102, "like")])
        other: list[FitRound] = []

        async def other_fitter() -> None:
            # Later clock: it takes both items, the slow fitter took only the early one.
            other.append(await fit_calibration(redis, SERVED_MS + 2 * WINDOW_MS, WINDOW_MS))

        slow = cast(Redis, ExecAfter(redis, other_fitter))
        assert await fit_calibration(slow, SERVED_MS + WINDOW_MS, WINDOW_MS) == FitRound()
        assert other == [FitRound(learnt=2)]
        # Had the slow fitter committed, its fit (the early item only) would have replaced this one.
        reference = SegmentedCalibrator()
        learn_outcome(reference, served_as(early), {"impression"})
        learn_outcome(reference, served_as(late), {"like"})
        assert (await load_calibrator(redis)).to_dict() == pytest.approx(reference.to_dict())
        assert await redis.exists(calibration_served_key(user), CALIBRATION_PENDING) == 0
        # each item taught the viewer's feedback once, by the fitter that committed
        engaged, expected, _ = (await redis.hget(feedback_key(user), "7") or b"").split()
        x = sum(expected_engaged(served_as(i).raw) for i in (early, late))
        assert (float(engaged), float(expected)) == pytest.approx((1.0, x))

    with_redis(redis_url, body)
