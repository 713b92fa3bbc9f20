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
Platt-calibrated per kind, `p = sigmoid(a_k * logit(raw) + b_k)`, with (a_k, b_k) fitted online
by `Calibrator` (`streams.mixer.calibration`) on served tweets' outcomes, so that predicted
probabilities match observed rates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from streams.mixer.calibration import EPS, Platt
from streams.mixer.calibration import Calibrator as Calibrator  # re-exported: the scorer's calibrator
from streams.mixer.features import NEGATIVE_KINDS, CandidateFeatures, EntityCounts

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

HOUR_MS: Final = 3_600_000.0


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
    calibration: Mapping[str, Platt] = field(default_factory=dict)


def _shrunk(counts: EntityCounts, kind: str, pseudo: float, prior: float) -> float:
    return (counts.count(kind) + pseudo * prior) / (counts.impressions + pseudo)


def recency(age_ms: float, model: ScoringModel) -> float:
    fresh = math.exp(-max(0.0, age_ms) * math.log(2.0) / model.recency_half_life_ms)
    return model.recency_floor + (1.0 - model.recency_floor) * fresh


def raw_prediction(
    features: CandidateFeatures, kind: str, model: ScoringModel, fresh: float | None = None
) -> float:
    """The uncalibrated estimate of one kind (module docstring), clipped into [EPS, 1 - EPS].
    `fresh` is `recency(features.age_ms, model)` when the caller has it already."""
    prior = model.priors[kind]
    author = _shrunk(features.author, kind, model.author_pseudo, prior)
    tweet = _shrunk(features.tweet, kind, model.tweet_pseudo, author)
    lift = _shrunk(features.user, kind, model.user_pseudo, prior) / prior
    pair = _shrunk(features.user_author, kind, model.affinity_pseudo, tweet * lift)
    if kind not in NEGATIVE_KINDS:
        pair *= recency(features.age_ms, model) if fresh is None else fresh
    return min(max(pair, EPS), 1.0 - EPS)


def raw_predictions(features: CandidateFeatures, model: ScoringModel) -> dict[str, float]:
    # Recency is the same for every kind of one candidate: computed once (the ranker's hot loop).
    fresh = recency(features.age_ms, model)
    return {kind: raw_prediction(features, kind, model, fresh) for kind in model.priors}


def predict(features: CandidateFeatures, model: ScoringModel) -> dict[str, float]:
    """Calibrated probability of each kind of engagement if the viewer is shown the tweet."""
    raw = raw_predictions(features, model)
    # Uncalibrated kinds skip the identity's logit and sigmoid: most of a request's math.
    for kind, platt in model.calibration.items():
        if kind in raw and (platt.a, platt.b) != (1.0, 0.0):
            raw[kind] = platt.apply(raw[kind])
    return raw


def score(p: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """sum(w_k * p_k) over the weighted kinds; a weighted kind missing from `p` is an error."""
    return sum(w * p[kind] for kind, w in weights.items())
