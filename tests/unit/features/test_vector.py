"""Merging feature families into an entity's whole vector (streams/features/vector.py)."""

from __future__ import annotations

from math import exp, log

import pytest

from streams.features.aggregates import apply, feature_vector
from streams.features.vector import EntityVector, FamilyUpdate, decayed_to

HOUR = 3_600_000


def contract_decayed(event_ts: list[int], at: int, half_life_ms: int) -> float:
    """CONTRACT.md's formula, from the events themselves."""
    return sum(exp(-(at - t) * log(2) / half_life_ms) for t in event_ts if t <= at)


def test_merged_vector_has_every_family_and_the_newest_values_of_each() -> None:
    vector = EntityVector()
    vector.apply(FamilyUpdate("tweet", "9", "engagements", 1000, {"like.total": 1.0}))
    vector.apply(FamilyUpdate("tweet", "9", "velocity", 1000, {"velocity.5m": 1.0}))
    vector.apply(FamilyUpdate("tweet", "9", "engagements", 2000, {"like.total": 2.0}))
    assert vector.ts == 2000
    assert vector.merged() == {"like.total": 2.0, "velocity.5m": 1.0}


def test_an_older_familys_decayed_counts_are_evaluated_at_the_vectors_ts() -> None:
    likes = [0, 10 * 60_000, 40 * 60_000]
    counts = None
    for ts in likes:
        counts = apply(counts, "like", ts)
    assert counts is not None
    vector = EntityVector()
    vector.apply(
        FamilyUpdate("tweet", "9", "engagements", counts.last_ts, feature_vector(counts, counts.last_ts))
    )
    signal_ts = counts.last_ts + 5 * HOUR
    vector.apply(FamilyUpdate("tweet", "9", "signals", signal_ts, {"signal.count.total": 1.0}))
    merged = vector.merged()
    assert vector.ts == signal_ts
    assert merged["like.total"] == 3
    assert merged["signal.count.total"] == 1.0
    assert merged["like.decayed.30m"] == pytest.approx(
        contract_decayed(likes, signal_ts, HOUR // 2), rel=1e-12
    )
    assert merged["like.decayed.24h"] == pytest.approx(
        contract_decayed(likes, signal_ts, 24 * HOUR), rel=1e-12
    )


def test_a_family_update_replaces_the_kept_one_even_with_an_older_event_time() -> None:
    # Late events can stamp a family's next update with an older event time; it is still newer.
    vector = EntityVector()
    vector.apply(FamilyUpdate("tweet", "9", "velocity", 5000, {"velocity.5m": 1.0}))
    vector.apply(FamilyUpdate("tweet", "9", "velocity", 4000, {"velocity.5m": 2.0}))
    assert vector.merged() == {"velocity.5m": 2.0}


def test_vectors_and_updates_survive_their_encodings() -> None:
    update = FamilyUpdate("user_author", "42:7", "engagements", 7, {"like.total": 1.0})
    assert FamilyUpdate.from_json(update.to_json()) == update
    assert update.key == "user_author:42:7"
    vector = EntityVector().apply(update)
    assert EntityVector.decode(vector.encode()).merged() == vector.merged()


def test_only_exponentially_decayed_names_decay() -> None:
    moved = decayed_to({"like.decayed.30m": 1.0, "like.total": 3.0, "velocity.5m": 2.0}, HOUR // 2)
    assert moved == {"like.decayed.30m": pytest.approx(0.5), "like.total": 3.0, "velocity.5m": 2.0}


def test_an_entity_with_one_family_needs_no_merge() -> None:
    assert FamilyUpdate("user_author", "42:7", "engagements", 7, {}).is_whole_vector
    assert FamilyUpdate("author", "7", "engagements", 7, {}).is_whole_vector
    assert not FamilyUpdate("tweet", "9", "engagements", 7, {}).is_whole_vector
    assert not FamilyUpdate("user", "42", "activity", 7, {}).is_whole_vector
