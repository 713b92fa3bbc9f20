"""The mixer reads what the aggregator writes: `entity_counts` of `scoring_fields`' output."""

from __future__ import annotations

import pytest

from streams.features.aggregates import apply, feature_vector, scoring_fields
from streams.mixer.features import entity_counts

DAY_MS = 86_400_000


def test_entity_counts_read_the_aggregators_scoring_fields() -> None:
    state = None
    for kind, ts in [
        ("impression", 0),
        ("impression", 0),
        ("like", 0),
        ("impression", DAY_MS),
        ("reply", DAY_MS),
    ]:
        state = apply(state, kind, ts)
    assert state is not None
    stored = scoring_fields(feature_vector(state, state.last_ts), state.last_ts)
    counts = entity_counts(stored, now_ms=2 * DAY_MS)
    # As of 2 days: the events at 0 are two half-lives old, those at 1 day one half-life.
    assert counts.impressions == pytest.approx(2 * 0.25 + 0.5)
    assert counts.count("like") == pytest.approx(0.25)
    assert counts.count("reply") == pytest.approx(0.5)
    assert counts.count("click") == 0.0
