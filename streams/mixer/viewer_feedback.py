"""Viewer feedback: per (viewer, author) weights learnt online from what served tweets got.

The scoring model reads counts that change as fast as their 24h half-life lets them. When a
viewer's interests move, it keeps predicting the old ones for a day. This learner watches the
model's own mistakes instead: for every served tweet the viewer saw, the model expected
`expected_engaged(p)` (the chance of any positive engagement, from the calibrated predictions p:
what calibration already corrects, such as out-of-network candidates' raw over-prediction, is not
counted again) and the viewer engaged or not.
Per (viewer, author) it keeps both sums, faded with `FEEDBACK_HALF_LIFE_MS`, and per viewer the
same sums over every author. An author whose tweets the viewer engages with more than the model
expects gets a weight above 1 on the positive kinds' terms of the score; less, below 1:

    base = (E_viewer + m) / (X_viewer + m)                the viewer's observed / expected
    lift = (E_author + m * base) / ((X_author + m) * base)  the author's, relative to base

E is engaged tweets, X expected engagements, m = `FEEDBACK_PSEUDO` expected engagements of
evidence before an author's own ratio counts as much as the viewer's. An author with no evidence
gets exactly 1, and so does every author when the viewer engages as the model expects. Only the
ratio to the viewer's own base matters: a viewer who engages less than predicted everywhere keeps
the model's ordering.

The lift weighs the ranking, not the predictions: the probabilities a page shows stay calibrated
(`streams.mixer.engagement_model.weighted_scores`). Only learning buckets (`Adaptation.learning`) learn
and use it; with learning frozen nothing more is learnt and the sums are read as they are, not
faded (as a frozen bandit keeps serving its best arm), until the viewer's hash expires
(`streams.ranked.feedback_store.KEEP_MS` after its last learning).

Pure: the Redis side (`streams.ranked.feedback_store`) stores and fades the sums, the hydrator sets
each candidate's `feedback_lift`, and the scorer applies it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Final, NamedTuple

import numpy as np

from streams.features.decay import exponential
from streams.mixer.calibration import Platt, ServedPrediction
from streams.mixer.engagement_model import calibrate_rows
from streams.mixer.features import KINDS, POSITIVE_KINDS

# A viewer's interests can move within hours. In the simulator 6h followed an interest rotation
# best (adaptive / static after it: 4h 1.023x, 6h 1.034x, 12h 1.015x; bench/RESULTS.md): shorter
# keeps too little evidence, longer remembers the old interests for too long.
FEEDBACK_HALF_LIFE_MS: Final = 6 * 3_600_000
# One expected engagement: ~10-20 seen tweets of an author before its own ratio weighs as much as
# the viewer's.
FEEDBACK_PSEUDO: Final = 1.0
# The viewer's sums, next to the authors' (which are named by the author id).
VIEWER: Final = "viewer"

_POSITIVE: Final = [KINDS.index(kind) for kind in POSITIVE_KINDS]


class Evidence(NamedTuple):
    """Faded sums over seen served tweets: how many were engaged, how many the model expected."""

    engaged: float = 0.0
    expected: float = 0.0

    def faded(self, factor: float) -> Evidence:
        return Evidence(self.engaged * factor, self.expected * factor)

    def __add__(self, other: object) -> Evidence:
        if not isinstance(other, Evidence):
            return NotImplemented
        return Evidence(self.engaged + other.engaged, self.expected + other.expected)


def expected_engaged(p: Sequence[float]) -> float:
    """The chance of at least one positive engagement, from one item's predictions in `KINDS`
    order, taking the kinds as independent."""
    none = 1.0
    for i in _POSITIVE:
        none *= 1.0 - p[i]
    return 1.0 - none


def served_evidence(p: Sequence[float], done: Collection[str]) -> Evidence:
    """One seen served item's evidence, from its calibrated predictions `p` and the kinds the
    viewer did to it: engaged if any positive kind."""
    return Evidence(1.0 if any(kind in done for kind in POSITIVE_KINDS) else 0.0, expected_engaged(p))


def seen_evidence(
    seen: Sequence[tuple[int, ServedPrediction, Collection[str]]], fit: Mapping[str, Mapping[str, Platt]]
) -> dict[int, dict[int, Evidence]]:
    """Viewer -> author -> the evidence of seen served items, each given as (viewer, what it was
    served with, what the viewer did to it). Expectations are the raw predictions through `fit`
    (`SegmentedCalibrator.params`), as the scorer calibrates them, in one pass for the batch.
    Items recorded before records carried their author teach nothing."""
    authored = [(v, s.author_id, s, done) for v, s, done in seen if s.author_id is not None]
    if not authored:
        return {}
    raw = np.array([served.raw for _, _, served, _ in authored])
    p = calibrate_rows(raw, [served.in_network for _, _, served, _ in authored], KINDS, fit)
    out: dict[int, dict[int, Evidence]] = {}
    for (viewer, author, _, done), row in zip(authored, p.tolist(), strict=True):
        by_author = out.setdefault(viewer, {})
        by_author[author] = by_author.get(author, Evidence()) + served_evidence(row, done)
    return out


def feedback_lift(author: Evidence, viewer: Evidence, pseudo: float = FEEDBACK_PSEUDO) -> float:
    """The author's weight for this viewer (module docstring)."""
    base = (viewer.engaged + pseudo) / (viewer.expected + pseudo)
    return (author.engaged + pseudo * base) / ((author.expected + pseudo) * base)


def fade_factor(elapsed_ms: float, half_life_ms: float = FEEDBACK_HALF_LIFE_MS) -> float:
    return exponential(1.0, max(0.0, elapsed_ms), half_life_ms)
