"""What ranked items were served with and what their viewers then did: the calibration's data.

The read path records each ranked item it serves with the raw predictions it was ranked with
(`record_served_predictions`, in the served recorder's pipeline; served again before its outcome
is taken, an item keeps its first record). The aggregator marks what the
viewer then did to it (`mark_outcomes`). Once an item's label window has passed, the fitter
(`fit_calibration`, a leader timer) learns from it and forgets it, and every ranked read scores
with the fit (`load_calibration`).

The same items teach the viewer-feedback learner (`streams.ranked.feedback_store`): a seen item served
to a user in a learning bucket adds to that user's sums for its author.

Exactly once: the fitter reads the matured items, then in one MULTI/EXEC guarded by WATCH on the
fit, writes the new fit and the viewers' feedback and deletes those items. A crash before EXEC
leaves all as they were and the items are learnt next round; a second fitter racing on the same
items (two leaders for a moment during a rebalance) fails its EXEC and learns nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError
from redis.typing import EncodableT, FieldT

from streams.mixer.adaptation import Adaptation
from streams.mixer.calibration import VIEWED, Platt, SegmentedCalibrator, ServedPrediction, learn_outcome
from streams.mixer.components import PageItem
from streams.mixer.features import KINDS
from streams.mixer.viewer_feedback import seen_evidence
from streams.ranked.feedback_store import queue_learning
from streams.serving.connection import is_cluster
from streams.serving.keys import (
    CALIBRATION,
    CALIBRATION_PENDING,
    CALIBRATION_SERVED_PREFIX,
    calibration_served_key,
    outcome_field,
    parse_pending_member,
    pending_member,
)
from streams.serving.scripts import Script, execute
from streams.serving.view import float_fields

log = logging.getLogger(__name__)

# What the aggregator marks on a served item: whether it was seen, and each predicted kind.
OUTCOME_KINDS: Final[tuple[str, ...]] = (VIEWED, *KINDS)
# Who learns from feedback: the users of the experiment's learning buckets.
LEARNING: Final = Adaptation()
# Items the fitter learns from per round trip; it takes rounds until none has matured.
FIT_BATCH: Final = 2000


# A user's served records awaiting their outcome, at most: past it (a fitter that does not keep up)
# new serves are not recorded, which samples them rather than letting the hash grow.
MAX_PENDING_PER_USER: Final = 5000

# Records served items that have no record yet: a tweet served again within its label window keeps
# the prediction it was first served with and its place in the queue, so its outcome answers that
# prediction (not one made after the aggregator counted the outcome into the features), and a tweet
# shown on every refresh still matures. Queue entries older than two label windows (their records
# expired with the hash) are dropped. The records travel as one argument of "tweet member record"
# triples (none has a space): a page's ~150 arguments cost the read path more to pack than to send.
RECORD = Script("streams.ranked", "record.lua")


def record_served_predictions(
    pipe: Pipeline, user_id: int, now_ms: int, items: Sequence[PageItem], label_window_ms: int
) -> None:
    """Queue, in `pipe`, the served items' raw predictions for the fitter (`RECORD`; run `pipe`
    with `streams.serving.scripts.execute`). The user's records expire two label windows after the
    latest serve: the fitter normally takes them after one, and a fitter that does not run must
    not make them pile up."""
    records = [
        f"{i.tweet_id} {pending_member(user_id, i.tweet_id)} "
        + ServedPrediction(i.in_network, tuple(i.raw_predictions[k] for k in KINDS), i.author_id).pack()
        for i in items
        if i.raw_predictions
    ]
    if records:
        RECORD.queue(
            pipe,
            [calibration_served_key(user_id), CALIBRATION_PENDING],
            [
                now_ms,
                2 * label_window_ms,
                now_ms - 2 * label_window_ms,
                MAX_PENDING_PER_USER,
                " ".join(records),
            ],
        )


# Marks (user, tweet, kind) on the user's served record when there is one. The aggregator sends one
# per engagement of a batch: a key each, and their "tweet field" lines as one argument.
MARK = Script("streams.ranked", "mark.lua")


async def mark_outcomes(redis: Redis, engagements: Sequence[tuple[int, int, str]]) -> None:
    """Mark (user, tweet, kind) engagements on the served items they answer; others are ignored.
    Setting a mark is idempotent: a replayed batch marks nothing twice."""
    marks = [(u, t, k) for u, t, k in engagements if k in OUTCOME_KINDS]
    if marks:
        keys = [calibration_served_key(u) for u, _, _ in marks]
        await MARK(redis, keys, ["\n".join(f"{t} {outcome_field(t, k)}" for _, t, k in marks)])


# The matured served items with their records and marks, at most `FIT_BATCH` a round.
TAKE_MATURED = Script("streams.ranked", "take_matured.lua")


@dataclass(frozen=True, slots=True)
class FitRound:
    """What a fitter round took: items learnt from; items not learnt from (never seen: no
    impression and no engagement; or learning is frozen); items whose record had expired or was
    unreadable."""

    learnt: int = 0
    not_learnt: int = 0
    lost: int = 0

    @property
    def taken(self) -> int:
        return self.learnt + self.not_learnt + self.lost

    def __add__(self, other: FitRound) -> FitRound:
        return FitRound(
            self.learnt + other.learnt, self.not_learnt + other.not_learnt, self.lost + other.lost
        )


async def _fit_round(redis: Redis, cutoff_ms: int, now_ms: int, learn: bool) -> FitRound:
    async with redis.pipeline(transaction=True) as pipe:
        await pipe.watch(CALIBRATION)
        taken: list[Any] = await TAKE_MATURED(
            pipe, [CALIBRATION_PENDING], [cutoff_ms, FIT_BATCH, CALIBRATION_SERVED_PREFIX, *OUTCOME_KINDS]
        )
        if not taken:
            return FitRound()
        calibrator = await load_calibrator(pipe)  # watching: the pipeline runs it at once
        # What the items' predictions were, near enough: the fit as it stands, not as it is learnt.
        fit = calibrator.params()
        learnt = not_learnt = lost = 0
        seen: list[tuple[int, ServedPrediction, set[str]]] = []  # learnt items of learning users
        pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        for member, (record, *marks) in taken:
            user, tweet = parse_pending_member(member)
            done = {kind for kind, mark in zip(OUTCOME_KINDS, marks, strict=True) if mark is not None}
            try:
                served = ServedPrediction.unpack(record) if record is not None else None
            except ValueError as exc:
                log.warning("calibration: dropping unreadable served record %s: %s", member, exc)
                served = None
            if served is None:
                lost += 1
            elif learn and learn_outcome(calibrator, served, done):
                learnt += 1
                if LEARNING.learns(user):
                    seen.append((user, served, done))
            else:
                not_learnt += 1
            # Every mark, also one set since the items were taken: it answers this serve, not a later one.
            pipe.hdel(calibration_served_key(user), tweet, *(outcome_field(tweet, k) for k in OUTCOME_KINDS))
        pipe.zrem(CALIBRATION_PENDING, *(member for member, _ in taken))
        if learnt:
            pipe.hset(CALIBRATION, mapping=cast(dict[FieldT, EncodableT], calibrator.to_dict()))
        evidence = seen_evidence(seen, fit)
        # A cluster keeps the users' feedback in their own hash slots, out of this transaction's
        # (keys.py): there it is learnt right after it, and lost, never doubled, if the fitter
        # dies in between.
        later = redis.pipeline(transaction=False) if is_cluster(redis) else pipe
        for user_id, by_author in evidence.items():
            queue_learning(later, user_id, now_ms, by_author)
        await execute(pipe)
        if later is not pipe and evidence:
            await execute(later)
        return FitRound(learnt, not_learnt, lost)


async def fit_calibration(redis: Redis, now_ms: int, label_window_ms: int, learn: bool = True) -> FitRound:
    """Learn from every served item whose label window has passed, and forget them; with
    `learn` off (learning frozen) they are only forgotten. Returns what was taken in all."""
    total = FitRound()
    while True:
        try:
            round_ = await _fit_round(redis, now_ms - label_window_ms, now_ms, learn)
        except WatchError:
            log.info("calibration: another fitter changed the fit; these items are left to it")
            return total
        total += round_
        if round_.taken < FIT_BATCH:
            return total


async def load_calibrator(redis: Redis) -> SegmentedCalibrator:
    """The fit as the fitter left it; `.params()` is what the scorer ranks with (identity before
    any fit)."""
    return SegmentedCalibrator.from_dict(float_fields(await redis.hgetall(CALIBRATION)))


async def load_calibration(redis: Redis) -> dict[str, dict[str, Platt]]:
    """The fit the scorer ranks with: segment -> kind -> Platt."""
    return (await load_calibrator(redis)).params()
