"""Engagement probabilities for (viewer, tweet), their calibration, and the weighted-sum score.

The raw estimate of kind k is an empirical-Bayes chain of rates, each shrunk toward the one above
it by a pseudo-count of impressions (how many impressions of its own an entity needs before its
own rate counts as much as the prior):

    author  = (A_k + m_author * prior_k) / (A_imp + m_author)      the author's tweets' rate
    tweet   = (T_k + m_tweet * author)   / (T_imp + m_tweet)        this tweet's rate
    lift    = ((U_k + m_user * prior_k)  / (U_imp + m_user)) / prior_k    the viewer's habit
    content = tweet * lift                                           this viewer, this tweet
    pair    = (P_k + m_affinity * content) / (P_imp + m_affinity)    affinity: the viewer's own
                                                                     history with the author
    raw     = pair * recency     recency = floor + (1 - floor) * 0.5 ** (age / half_life),
                                 for positive kinds only: complaints do not fade with age

A brand-new tweet by an unknown author for an unknown viewer is therefore `prior_k` (times its
recency), and every count moves it only as far as its evidence warrants. The raw value is then
Platt-calibrated per segment (in- or out-of-network) and kind, `p = sigmoid(a_k * logit(raw) + b_k)`,
with (a_k, b_k) fitted online by `SegmentedCalibrator` (`streams.mixer.calibration`) on served
tweets' outcomes, so that predicted probabilities match observed rates.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

from streams.features.decay import HOUR_MS
from streams.mixer.calibration import EPS, IDENTITY, Platt, segment_of
from streams.mixer.features import KINDS, NEGATIVE_KINDS, CandidateFeatures, stack_counts

# Twitter's heavy-ranker weights as published in April 2023 (the-algorithm-ml, `projects/home/
# recap`), mapped onto the engagement kinds this project records:
#   like           <- "fav" (0.5)
#   retweet        <- "retweet" (1.0)
#   reply          <- "reply" (13.5); "reply engaged by author" (75.0) needs the author's own
#                     reactions to replies, which are not recorded: not used
#   profile_click  <- "good profile click" (12.0): profile visit then engagement; here any visit
#   click          <- "good click" (11.0): click into the conversation then reply or a 2-minute
#                     dwell; here any click ("good click v2", 10.0, is the same signal: not used)
#   not_interested <- "negative feedback v2" (-74.0): show less, block, mute, not interested
#   report         <- "report" (-369.0)
# "video playback 50%" (0.005) has no counterpart here.
TWITTER_WEIGHTS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "like": 0.5,
        "retweet": 1.0,
        "reply": 13.5,
        "profile_click": 12.0,
        "click": 11.0,
        "not_interested": -74.0,
        "report": -369.0,
    }
)

# Base rates per impression before any evidence: rough public figures for a home timeline (about
# 2-3% of impressions liked, a fraction of that replied). Only the starting point: calibration
# corrects the level, and every entity's own counts outweigh these after a few hundred impressions.
DEFAULT_PRIORS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "like": 0.03,
        "retweet": 0.005,
        "reply": 0.003,
        "click": 0.05,
        "profile_click": 0.01,
        "not_interested": 0.001,
        "report": 0.0001,
    }
)

KIND_INDEX: Final = {kind: i for i, kind in enumerate(KINDS)}

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ScoringModel:
    """The parameters of `raw_predictions` and `predict`; defaults are documented per field."""

    priors: Mapping[str, float] = field(default_factory=lambda: DEFAULT_PRIORS)
    # An author's rate is shrunk to the prior until it has ~100 (decayed) impressions of its own.
    author_pseudo: float = 100.0
    # A tweet's rate is shrunk to its author's: 50 impressions, a tweet's first minutes of reach.
    tweet_pseudo: float = 50.0
    # A viewer's habits need more evidence (200): they scale every candidate of the page.
    user_pseudo: float = 200.0
    # The viewer x author history counts as much as the rest after 20 impressions of that author.
    affinity_pseudo: float = 20.0
    # Positive engagement falls off with age: half as likely after 12 hours, never below 10%.
    recency_half_life_ms: float = 12 * HOUR_MS
    recency_floor: float = 0.1
    # segment (`calibration.SEGMENTS`) -> kind -> its Platt; a missing one is the identity.
    calibration: Mapping[str, Mapping[str, Platt]] = field(default_factory=dict)


def recency(age_ms: FloatArray, model: ScoringModel) -> FloatArray:
    fresh = np.exp(-np.maximum(0.0, age_ms) * (math.log(2.0) / model.recency_half_life_ms))
    return model.recency_floor + (1.0 - model.recency_floor) * fresh


def _positive(kinds: Sequence[str]) -> npt.NDArray[np.bool_]:
    """Which of `kinds` are positive engagements (the columns recency and feedback lifts scale)."""
    return np.array([kind not in NEGATIVE_KINDS for kind in kinds])


def _shrunk(counts: FloatArray, columns: list[int], pseudo: float, prior: FloatArray) -> FloatArray:
    """(count_k + pseudo * prior_k) / (impressions + pseudo), per row and kind."""
    return (counts[:, columns] + pseudo * prior) / (counts[:, -1:] + pseudo)


def raw_predictions_matrix(features: Sequence[CandidateFeatures], model: ScoringModel) -> FloatArray:
    """The uncalibrated estimates (module docstring) of every candidate (rows) and kind of
    `model.priors` (columns, in its order), clipped into [EPS, 1 - EPS]. One pass of array
    arithmetic: the ranker scores hundreds of candidates per request."""
    kinds = list(model.priors)
    columns = [KIND_INDEX[kind] for kind in kinds]
    prior = np.array([model.priors[kind] for kind in kinds])
    author = _shrunk(stack_counts([f.author for f in features]), columns, model.author_pseudo, prior)
    tweet = stack_counts([f.tweet for f in features])
    content = (tweet[:, columns] + model.tweet_pseudo * author) / (tweet[:, -1:] + model.tweet_pseudo)
    content *= _shrunk(stack_counts([f.user for f in features]), columns, model.user_pseudo, prior) / prior
    pair = stack_counts([f.user_author for f in features])
    raw = (pair[:, columns] + model.affinity_pseudo * content) / (pair[:, -1:] + model.affinity_pseudo)
    positive = _positive(kinds)
    fresh = recency(np.array([f.age_ms for f in features]), model)
    raw[:, positive] *= fresh[:, None]
    return np.clip(raw, EPS, 1.0 - EPS)


def calibrated(raw: FloatArray, in_network: Sequence[bool], model: ScoringModel) -> FloatArray:
    """`raw_predictions_matrix`'s rows through `model.calibration` (`calibrate_rows`)."""
    return calibrate_rows(raw, in_network, list(model.priors), model.calibration)


def calibrate_rows(
    raw: FloatArray,
    in_network: Sequence[bool],
    kinds: Sequence[str],
    calibration: Mapping[str, Mapping[str, Platt]],
) -> FloatArray:
    """Raw predictions (rows; columns in `kinds` order) through a fit (`SegmentedCalibrator.params`):
    each row by its segment's fit (in-network or out-of-network), each kind by its own Platt; no
    fit is the identity."""
    # Row 0 of a and b is the in-network fit, row 1 the out-of-network one.
    fits = [calibration.get(segment_of(s), {}) for s in (True, False)]
    a = np.array([[f.get(kind, IDENTITY).a for kind in kinds] for f in fits])
    b = np.array([[f.get(kind, IDENTITY).b for kind in kinds] for f in fits])
    if np.all(a == 1.0) and np.all(b == 0.0):
        return raw
    segment = np.array([0 if s else 1 for s in in_network], dtype=np.intp)
    z: FloatArray = a[segment] * np.log(raw / (1.0 - raw)) + b[segment]
    return 1.0 / (1.0 + np.exp(-z))


def predictions_matrix(features: Sequence[CandidateFeatures], model: ScoringModel) -> FloatArray:
    """Calibrated probabilities of every candidate (rows) and kind of `model.priors` (columns)."""
    return calibrated(raw_predictions_matrix(features, model), [f.in_network for f in features], model)


class PredictionRow(Mapping[str, float]):
    """One candidate's row of a predictions matrix read as {kind: probability}, read from the
    matrix when asked. A request scores hundreds of candidates and shows tens: neither a dict nor
    a float is built for the rest."""

    __slots__ = ("_columns", "_matrix", "_row")

    def __init__(self, columns: Mapping[str, int], matrix: FloatArray, row: int) -> None:
        self._columns = columns
        self._matrix = matrix
        self._row = row

    def __getitem__(self, kind: str) -> float:
        return self._matrix.item(self._row, self._columns[kind])

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __repr__(self) -> str:
        return f"PredictionRow({dict(self)!r})"


def raw_prediction(features: CandidateFeatures, kind: str, model: ScoringModel) -> float:
    """One candidate's uncalibrated estimate of one kind."""
    return float(raw_predictions_matrix([features], model)[0, list(model.priors).index(kind)])


def predict(features: CandidateFeatures, model: ScoringModel) -> dict[str, float]:
    """Calibrated probability of each kind of engagement if the viewer is shown the tweet."""
    return dict(zip(model.priors, predictions_matrix([features], model)[0].tolist(), strict=True))


def weight_vector(kinds: Sequence[str], weights: Mapping[str, float]) -> FloatArray:
    """`weights` in the order of `kinds`, for `predictions_matrix(...) @ weight_vector(...)`;
    a weighted kind missing from `kinds` is an error, as in `score`."""
    missing = set(weights) - set(kinds)
    if missing:
        raise KeyError(f"weighted kinds the model does not predict: {sorted(missing)}")
    return np.array([weights.get(kind, 0.0) for kind in kinds])


def weighted_scores(
    p: FloatArray, kinds: Sequence[str], weights: Mapping[str, float], lifts: FloatArray
) -> FloatArray:
    """Each row's `score`, with its positive kinds' terms times the row's lift: the viewer's learnt
    weight on the candidate's author (`streams.mixer.viewer_feedback`). The probabilities stay as they
    are (calibrated); the lift is a weight of the ranking, not a prediction."""
    w = weight_vector(kinds, weights)
    scores: FloatArray = p @ w
    if np.any(lifts != 1.0):
        positive = _positive(kinds)
        scores += (lifts - 1.0) * (p[:, positive] @ w[positive])
    return scores


def score(p: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """sum(w_k * p_k) over the weighted kinds; a weighted kind missing from `p` is an error."""
    return sum(w * p[kind] for kind, w in weights.items())
