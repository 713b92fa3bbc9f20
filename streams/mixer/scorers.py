"""The scorer component: calibrated engagement probabilities, weighted by the query's weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np

from streams.mixer.components import Candidate, Query, Scorer, ScoreResult
from streams.mixer.engagement_model import (
    PredictionRow,
    ScoringModel,
    calibrated,
    raw_predictions_matrix,
    weighted_scores,
)

# How many kinds a reason names: the ones that add most to the score.
REASON_KINDS: Final = 2


def percent(p: float) -> str:
    """4% above one percent, 0.4% below, so that small but weighty kinds still read as nonzero."""
    return f"{p * 100:.0f}%" if p >= 0.01 else f"{p * 100:.1f}%"


def prediction_reason(predictions: Mapping[str, float], weights: Mapping[str, float]) -> str:
    """'predicted like 4%, reply 1%': the kinds with the largest positive weighted contribution."""
    contributions = sorted(
        ((w * predictions[k], k) for k, w in weights.items() if w > 0 and k in predictions), reverse=True
    )
    named = [f"{k.replace('_', ' ')} {percent(predictions[k])}" for _, k in contributions[:REASON_KINDS]]
    return "predicted " + ", ".join(named) if named else "no positive prediction"


class EngagementScorer(Scorer):
    """`score(predict(features), query.weights)`, the heavy ranker's weighted sum, for all
    candidates of a request at once; in a learning bucket each candidate's positive terms are
    weighted by the viewer's feedback on its author (`weighted_scores`)."""

    def __init__(self, model: ScoringModel, name: str = "WeightedEngagement") -> None:
        super().__init__(name)
        self.model = model

    def score(self, query: Query, candidates: Sequence[Candidate]) -> list[ScoreResult]:
        return self.score_many([(query, candidates)])[0]

    def score_many(self, requests: Sequence[tuple[Query, Sequence[Candidate]]]) -> list[list[ScoreResult]]:
        """`score` for several requests at once: the predictions of all their candidates in one
        pass of array arithmetic (the score calculator re-scores a batch's viewers, ~20
        candidates each, where one pass per viewer would be mostly numpy's fixed cost), then
        each request's weighted sum with its own weights."""
        features = [c.features for _, candidates in requests for c in candidates]
        if not features:
            return [[] for _ in requests]
        kinds = list(self.model.priors)
        columns = {kind: i for i, kind in enumerate(kinds)}
        raw = raw_predictions_matrix(features, self.model)
        p = calibrated(raw, [f.in_network for f in features], self.model)
        lifts = np.array([f.feedback_lift for f in features])
        results: list[list[ScoreResult]] = []
        start = 0
        for query, candidates in requests:
            end = start + len(candidates)
            scores = weighted_scores(p[start:end], kinds, query.weights, lifts[start:end])
            results.append(
                [
                    ScoreResult(s, PredictionRow(columns, p, row), PredictionRow(columns, raw, row))
                    for row, s in enumerate(scores.tolist(), start)
                ]
            )
            start = end
        return results

    def reason(self, query: Query, candidate: Candidate) -> str:
        reason = prediction_reason(candidate.predictions, query.weights)
        lift = candidate.features.feedback_lift
        shown = f"{lift:.2f}"
        return f"{reason}; your engagement with this author x{shown}" if shown != "1.00" else reason
