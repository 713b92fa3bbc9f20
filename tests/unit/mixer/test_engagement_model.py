from __future__ import annotations

import math

import numpy as np
import pytest

from streams.features.aggregates import ENGAGEMENT_TYPES
from streams.features.decay import HOUR_MS
from streams.mixer.calibration import Platt
from streams.mixer.engagement_model import (
    DEFAULT_PRIORS,
    TWITTER_WEIGHTS,
    PredictionRow,
    ScoringModel,
    predict,
    predictions_matrix,
    raw_prediction,
    score,
)
from streams.mixer.features import (
    KINDS,
    SIGNAL_FIELDS,
    STORED_FIELDS,
    CandidateFeatures,
    EntityCounts,
    HomeFeatures,
    decayed_boosts,
    entity_counts,
    pack_stored,
    stack_counts,
    stored_counts_many,
    tweet_age_ms,
)
from streams.mixer.scorers import percent, prediction_reason
from streams.snowflake import snowflake_at

DAY_MS = 86_400_000


def test_every_kind_is_an_engagement_type_of_the_schema() -> None:
    assert set(KINDS) <= set(ENGAGEMENT_TYPES)
    assert set(TWITTER_WEIGHTS) == set(KINDS) == set(DEFAULT_PRIORS)


def test_twitters_published_weights() -> None:
    assert dict(TWITTER_WEIGHTS) == {
        "like": 0.5,
        "retweet": 1.0,
        "reply": 13.5,
        "profile_click": 12.0,
        "click": 11.0,
        "not_interested": -74.0,
        "report": -369.0,
    }


def test_score_is_the_weighted_sum() -> None:
    p = {
        "like": 0.1,
        "retweet": 0.02,
        "reply": 0.01,
        "profile_click": 0.03,
        "click": 0.05,
        "not_interested": 0.002,
        "report": 0.0001,
    }
    # 0.05 + 0.02 + 0.135 + 0.36 + 0.55 - 0.148 - 0.0369
    assert score(p, TWITTER_WEIGHTS) == pytest.approx(0.9301)
    with pytest.raises(KeyError):
        score({"like": 0.1}, TWITTER_WEIGHTS)


def test_no_evidence_predicts_the_prior() -> None:
    fresh = CandidateFeatures(tweet_id=1, author_id=2, in_network=True)
    assert predict(fresh, ScoringModel()) == pytest.approx(dict(DEFAULT_PRIORS))


def test_raw_prediction_by_hand() -> None:
    f = CandidateFeatures(
        tweet_id=1,
        author_id=2,
        in_network=True,
        author=EntityCounts({"like": 10.0}, 100.0),
        tweet=EntityCounts({"like": 6.0}, 50.0),
        user=EntityCounts({"like": 9.0}, 100.0),
        user_author=EntityCounts({"like": 2.0}, 10.0),
        age_ms=12 * HOUR_MS,
    )
    author = (10 + 100 * 0.03) / (100 + 100)  # 0.065
    tweet = (6 + 50 * author) / (50 + 50)  # 0.0925
    lift = ((9 + 200 * 0.03) / (100 + 200)) / 0.03  # 0.05 / 0.03
    pair = (2 + 20 * tweet * lift) / (10 + 20)
    recency = 0.1 + 0.9 * 0.5  # one recency half-life old
    assert raw_prediction(f, "like", ScoringModel()) == pytest.approx(pair * recency)
    assert pair * recency == pytest.approx(0.0931944, abs=1e-6)


def test_recency_spares_negative_kinds() -> None:
    old = CandidateFeatures(tweet_id=1, author_id=2, in_network=True, age_ms=10 * DAY_MS)
    model = ScoringModel()
    assert raw_prediction(old, "not_interested", model) == pytest.approx(0.001)
    assert raw_prediction(old, "like", model) == pytest.approx(0.03 * (0.1 + 0.9 * 0.5**20))


def test_platt_calibration_is_applied_per_segment_and_kind() -> None:
    fresh = CandidateFeatures(tweet_id=1, author_id=2, in_network=True)
    trending = fresh._replace(in_network=False)
    model = ScoringModel(
        priors={"like": 0.2, "reply": 0.2},
        calibration={"in_network": {"like": Platt(2.0, -1.0)}, "out_of_network": {"like": Platt(1.0, -1.0)}},
    )
    # sigmoid(2 logit(0.2) - 1) = 1 / (1 + ((1 - 0.2) / 0.2)**2 * e); no fit for reply: identity
    assert predict(fresh, model) == {
        "like": pytest.approx(1 / (1 + 16 * math.e)),
        "reply": pytest.approx(0.2),
    }
    # the out-of-network fit for the trending tweet: sigmoid(logit(0.2) - 1) = 1 / (1 + 4 e)
    assert predict(trending, model)["like"] == pytest.approx(1 / (1 + 4 * math.e))
    both = predictions_matrix([fresh, trending, fresh], model)[:, 0].tolist()
    assert both == pytest.approx([1 / (1 + 16 * math.e), 1 / (1 + 4 * math.e), 1 / (1 + 16 * math.e)])


def test_entity_counts_decay_to_the_request_clock() -> None:
    stored = {"like": 8.0, "reply": 2.0, "impression": 16.0, "ts": 0.0, "bookmark": 5.0}
    counts = entity_counts(stored, now_ms=DAY_MS)
    assert counts.counts == {"like": pytest.approx(4.0), "reply": pytest.approx(1.0)}
    assert counts.impressions == pytest.approx(8.0)
    assert counts.count("report") == 0.0
    assert entity_counts({}, now_ms=DAY_MS) == EntityCounts()
    signal = pack_stored({HomeFeatures.SIGNAL_BOOST: 6.0, HomeFeatures.TS: float(DAY_MS)}, SIGNAL_FIELDS)
    assert len(signal) == 1 + 2 * 8  # a tag byte and two doubles
    assert decayed_boosts([signal, None], now_ms=3 * DAY_MS) == [pytest.approx(1.5), 0.0]
    with pytest.raises(ValueError, match="do not have the 2 fields"):
        decayed_boosts([signal + signal[1:9]], now_ms=0)
    with pytest.raises(ValueError, match="do not have the 2 fields"):
        decayed_boosts([b"1.0,2.0,3.0"], now_ms=0)


def test_a_page_of_stored_strings_decodes_as_each_one_alone() -> None:
    rows = [
        pack_stored({"like": 8.0, "impression": 16.0, "ts": 0.0}, STORED_FIELDS),
        None,
        pack_stored({"report": 1.0, "impression": 2.0}, STORED_FIELDS),  # no ts: taken as current
        # Text, as earlier versions wrote them: absent fields empty, then spelled "nan".
        b"8.0,,,,,,,16.0,0.0",
        b"8.0,nan,nan,nan,nan,nan,nan,16.0,0.0",
    ]
    many = stored_counts_many(rows, now_ms=DAY_MS)
    assert many == [stored_counts_many([r], now_ms=DAY_MS)[0] for r in rows]
    assert many[0] == many[3] == many[4]
    assert many[0].row == pytest.approx(EntityCounts({"like": 4.0}, 8.0).row)
    assert many[1] == EntityCounts()
    assert many[2] == EntityCounts({"report": 1.0}, 2.0)
    signals = [pack_stored({"boost": 6.0, "ts": 0.0}, SIGNAL_FIELDS), None]
    assert decayed_boosts(signals, now_ms=2 * DAY_MS) == [pytest.approx(1.5), 0.0]
    with pytest.raises(ValueError, match="do not have the 9 fields"):
        stored_counts_many([rows[0], b"1.0,2.0"], now_ms=0)
    with pytest.raises(ValueError, match="do not have the 9 fields"):
        stored_counts_many([rows[0][:-8], rows[2] + rows[2][1:9]], now_ms=0)  # the right total
    with pytest.raises(ValueError, match="do not have the 2 fields"):
        decayed_boosts([b"1.0,2.0,3.0", b"4.0"], now_ms=0)  # the right total, every field shifted


def test_candidates_sharing_an_author_score_as_if_each_had_its_own_copy() -> None:
    author, viewer = EntityCounts({"like": 10.0}, 100.0), EntityCounts({"reply": 3.0}, 50.0)
    shared = [
        CandidateFeatures(
            tweet_id=t,
            author_id=2,
            in_network=True,
            tweet=EntityCounts({"like": t}, 20.0),
            author=author,
            user=viewer,
        )
        for t in (1, 2, 3)
    ]
    copies = [
        f._replace(
            author=EntityCounts(author.counts, author.impressions),
            user=EntityCounts(viewer.counts, viewer.impressions),
        )
        for f in shared
    ]
    model = ScoringModel()
    assert predictions_matrix(shared, model).tolist() == predictions_matrix(copies, model).tolist()
    assert [predict(f, model) for f in shared] == [predict(f, model) for f in copies]


def test_stacked_counts_are_the_rows_in_order_whatever_they_were_decoded_with() -> None:
    decoded = stored_counts_many(
        [pack_stored({"like": float(i), "impression": 10.0 * i, "ts": 0.0}, STORED_FIELDS) for i in range(4)],
        now_ms=0,
    )
    order = [decoded[2], decoded[0], decoded[2], decoded[3]]
    assert stack_counts(order).tolist() == [list(e.row) for e in order]  # gathered from one matrix
    mixed = [*order, EntityCounts({"reply": 1.0}, 2.0)]
    assert stack_counts(mixed).tolist() == [list(e.row) for e in mixed]
    assert stack_counts([]).shape == (0, len(KINDS) + 1)


def test_a_prediction_row_reads_as_a_mapping() -> None:
    row = PredictionRow({"like": 0, "reply": 1}, np.array([[0.5, 0.5], [0.04, 0.01]]), 1)
    assert row == {"like": 0.04, "reply": 0.01}
    assert row["reply"] == 0.01 and list(row) == ["like", "reply"] and len(row) == 2
    with pytest.raises(KeyError):
        row["report"]


def test_tweet_age_from_its_snowflake() -> None:
    tweet = snowflake_at(1_700_000_000_000, worker=3, sequence=9)
    assert tweet_age_ms(tweet, 1_700_000_060_000) == 60_000.0
    assert tweet_age_ms(tweet, 1_699_999_999_000) == 0.0


def test_prediction_reason_names_the_largest_weighted_kinds() -> None:
    p = {k: 0.0 for k in KINDS} | {"like": 0.04, "reply": 0.01, "click": 0.005, "report": 0.5}
    # weighted: like 0.02, reply 0.135, click 0.055
    assert prediction_reason(p, TWITTER_WEIGHTS) == "predicted reply 1%, click 0.5%"
    assert percent(0.04) == "4%" and percent(0.004) == "0.4%"
