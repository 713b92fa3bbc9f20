"""The viewer-feedback learner's math, and how its lifts weigh a ranked request's scores."""

from __future__ import annotations

import math

import pytest

from streams.mixer.calibration import Platt, ServedPrediction
from streams.mixer.components import Candidate, Query
from streams.mixer.engagement_model import TWITTER_WEIGHTS, ScoringModel, predict, raw_prediction, score
from streams.mixer.features import KINDS, CandidateFeatures, EntityCounts
from streams.mixer.scorers import EngagementScorer
from streams.mixer.viewer_feedback import (
    FEEDBACK_HALF_LIFE_MS,
    Evidence,
    expected_engaged,
    fade_factor,
    feedback_lift,
    seen_evidence,
    served_evidence,
)

RAW = (0.04, 0.01, 0.005, 0.05, 0.02, 0.003, 0.0002)  # in KINDS order


def test_expected_engagement_is_the_chance_of_any_positive_kind() -> None:
    assert KINDS[:5] == ("like", "retweet", "reply", "click", "profile_click")
    # 1 - 0.96 * 0.99 * 0.995 * 0.95 * 0.98, the negative kinds left out
    assert expected_engaged(RAW) == pytest.approx(1 - 0.96 * 0.99 * 0.995 * 0.95 * 0.98)
    assert expected_engaged((0.0,) * 5 + (0.9, 0.9)) == 0.0


def test_a_seen_item_is_engaged_by_any_positive_kind_only() -> None:
    x = expected_engaged(RAW)
    assert served_evidence(RAW, {"impression"}) == Evidence(0.0, x)
    assert served_evidence(RAW, {"impression", "not_interested", "report"}) == Evidence(0.0, x)
    assert served_evidence(RAW, {"click"}) == Evidence(1.0, x)
    assert served_evidence(RAW, {"like", "reply"}) == Evidence(1.0, x)


def test_seen_items_sum_per_viewer_and_author_with_the_fits_expectations() -> None:
    fit = {"out_of_network": {"like": Platt(1.0, 1.0)}}
    oon = ServedPrediction(False, RAW, author_id=7)
    seen = [
        (1, ServedPrediction(True, RAW, author_id=7), {"impression"}),
        (1, oon, {"like"}),
        (1, ServedPrediction(True, RAW, author_id=8), {"click"}),
        (2, ServedPrediction(True, RAW, author_id=7), {"reply"}),
        (2, ServedPrediction(True, RAW), {"like"}),  # recorded before records carried the author
    ]
    x = expected_engaged(RAW)  # in-network: no fit, the raw predictions as they are
    x_oon = expected_engaged((Platt(1.0, 1.0).apply(RAW[0]), *RAW[1:]))
    assert x_oon > x * 1.2  # not vacuous: the fit moves the out-of-network expectation
    got = seen_evidence(seen, fit)
    assert got == {
        1: {7: pytest.approx(Evidence(1.0, x + x_oon)), 8: pytest.approx(Evidence(1.0, x))},
        2: {7: pytest.approx(Evidence(1.0, x))},
    }
    assert seen_evidence([], fit) == {}


def test_lift_by_hand() -> None:
    viewer = Evidence(engaged=10.0, expected=20.0)
    # base = 11 / 21; lift = (4 + 11/21) / (3 * 11/21) = (84 + 11) / 33
    assert feedback_lift(Evidence(4.0, 2.0), viewer) == pytest.approx(95 / 33)
    assert feedback_lift(Evidence(0.0, 2.0), viewer) == pytest.approx(1 / 3)


def test_no_evidence_and_a_viewer_who_engages_as_expected_keep_the_model_ordering() -> None:
    viewer = Evidence(3.0, 12.0)
    assert feedback_lift(Evidence(), viewer) == 1.0
    assert feedback_lift(Evidence(5.0, 5.0), Evidence(40.0, 40.0)) == pytest.approx(1.0)
    # An author engaged at the viewer's own ratio, with much evidence, is near 1 whatever the ratio.
    assert feedback_lift(Evidence(250.0, 1000.0), Evidence(2500.0, 10000.0)) == pytest.approx(1.0, abs=2e-3)


def test_lift_grows_with_evidence_toward_the_authors_ratio_over_the_viewers() -> None:
    viewer = Evidence(1000.0, 2000.0)  # engages half as often as predicted
    lifts = [feedback_lift(Evidence(n * 1.0, n * 1.0), viewer) for n in (1, 10, 100, 1000)]
    assert lifts == sorted(lifts) and lifts[0] > 1.0
    assert lifts[-1] == pytest.approx(2.0, rel=1e-3)  # engaged as predicted: twice the viewer's ratio


def test_evidence_fades_with_its_half_life() -> None:
    assert fade_factor(FEEDBACK_HALF_LIFE_MS) == pytest.approx(0.5)
    assert fade_factor(-5.0) == 1.0  # a clock behind the stored one fades nothing
    assert Evidence(4.0, 8.0).faded(0.25) == Evidence(1.0, 2.0)
    assert Evidence(1.0, 2.0) + Evidence(3.0, 4.0) == Evidence(4.0, 6.0)


def features(tweet_id: int, lift: float) -> CandidateFeatures:
    tweet = EntityCounts({"like": 3.0, "reply": 1.0, "not_interested": 2.0}, 40.0)
    return CandidateFeatures(tweet_id, 7, True, tweet=tweet, feedback_lift=lift)


def test_the_lift_weighs_the_positive_terms_of_the_score_and_leaves_the_predictions_calibrated() -> None:
    fit = {"in_network": {"like": Platt(1.2, 0.8), "click": Platt(0.9, -0.3)}}
    model = ScoringModel(calibration=fit)
    scorer = EngagementScorer(model)
    query = Query(1, 10, None, 0, "adaptive", "twitter", TWITTER_WEIGHTS)
    lifts = (1.0, 2.5, 0.4)
    candidates = [Candidate(t, 7, "push", features(t, lift)) for t, lift in enumerate(lifts)]
    results = scorer.score(query, candidates)
    for c, r, lift in zip(candidates, results, lifts, strict=True):
        p = predict(c.features, model)  # calibrated; the same for every lift
        assert dict(r.predictions) == pytest.approx(p)
        assert p["like"] != pytest.approx(raw_prediction(c.features, "like", model))
        positive = sum(w * p[k] for k, w in TWITTER_WEIGHTS.items() if w > 0)
        negative = sum(w * p[k] for k, w in TWITTER_WEIGHTS.items() if w < 0)
        assert r.score == pytest.approx(lift * positive + negative)
    assert results[0].score == pytest.approx(score(predict(candidates[0].features, model), TWITTER_WEIGHTS))
    assert math.isclose(results[1].predictions["like"], results[0].predictions["like"])
    for c, r in zip(candidates, results, strict=True):
        c.predictions = r.predictions
    assert scorer.reason(query, candidates[0]).startswith("predicted ")
    assert "your engagement with this author" not in scorer.reason(query, candidates[0])
    assert scorer.reason(query, candidates[1]).endswith("; your engagement with this author x2.50")
    # a lift that shows as x1.00 is not shown
    candidates[2].features = candidates[2].features._replace(feedback_lift=0.997)
    assert "your engagement" not in scorer.reason(query, candidates[2])


def test_scoring_many_requests_at_once_gives_each_the_scores_of_its_own_request() -> None:
    scorer = EngagementScorer(ScoringModel(calibration={"in_network": {"like": Platt(1.2, 0.8)}}))
    heavy_likes = {**TWITTER_WEIGHTS, "like": 5.0}
    requests = [
        (Query(1, 10, None, 0, "adaptive", "twitter", TWITTER_WEIGHTS), [features(1, 1.0), features(2, 2.5)]),
        (Query(2, 10, None, 0, "adaptive", "likes", heavy_likes), []),
        (Query(3, 10, None, 0, "adaptive", "likes", heavy_likes), [features(3, 0.4)]),
    ]
    batches = [(q, [Candidate(f.tweet_id, 7, "push", f) for f in fs]) for q, fs in requests]
    together = scorer.score_many(batches)
    alone = [scorer.score(q, cs) for q, cs in batches]
    assert [len(rs) for rs in together] == [len(rs) for rs in alone] == [2, 0, 1]
    flat = [r.score for rs in together for r in rs]
    assert flat == pytest.approx([r.score for rs in alone for r in rs])
    assert dict(together[2][0].predictions) == pytest.approx(dict(alone[2][0].predictions))
    assert together[0][1].score != pytest.approx(together[2][0].score)
