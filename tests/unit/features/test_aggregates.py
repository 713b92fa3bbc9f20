"""Lazily decayed counts against the contract's formula recomputed from every event's timestamp."""

from __future__ import annotations

import math
import random
import struct

import pytest

from streams.features.aggregates import (
    ENGAGEMENT_TYPES,
    DecayedCounts,
    TypeCounts,
    apply,
    decode,
    encode,
    feature_names,
    feature_vector,
    like_count,
)

# Written out here rather than imported, so a wrong constant in the module fails the tests.
REFERENCE_HALF_LIVES_MS = {
    "30m": 30 * 60_000,
    "24h": 24 * 3_600_000,
    "72h": 72 * 3_600_000,
    "14d": 14 * 86_400_000,
}
T0 = 1_700_000_000_000
Event = tuple[str, int]


def reference(events: list[Event], at: int) -> dict[str, float]:
    """CONTRACT.md: sum_i exp(-(ts - ts_i) ln2 / half_life) over events of a type with ts_i <= ts."""
    out: dict[str, float] = {}
    for etype in {t for t, _ in events}:
        stamps = [ts for t, ts in events if t == etype]
        for name, hl in REFERENCE_HALF_LIVES_MS.items():
            terms = (math.exp(-(at - ts) * math.log(2) / hl) for ts in stamps if ts <= at)
            out[f"{etype}.decayed.{name}"] = math.fsum(terms)
        out[f"{etype}.total"] = float(len(stamps))
    return out


def assert_matches(got: dict[str, float], want: dict[str, float]) -> None:
    assert got.keys() == want.keys()
    for name, value in want.items():
        # abs_tol only covers values that underflow towards zero (a 30m count after weeks).
        assert math.isclose(got[name], value, rel_tol=1e-9, abs_tol=1e-300), (name, got[name], value)


def random_events(rng: random.Random, n: int, late_fraction: float) -> list[Event]:
    types = rng.sample(ENGAGEMENT_TYPES, 4)
    events: list[Event] = []
    clock = T0
    for _ in range(n):
        # Bursts in the same millisecond, seconds, and gaps of hours to days.
        clock += rng.choice([0, 0, rng.randint(1, 5_000), rng.randint(1, 6 * 3_600_000), 3 * 86_400_000])
        ts = clock - rng.randint(1, 12 * 3_600_000) if rng.random() < late_fraction else clock
        events.append((rng.choice(types), ts))
    return events


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("late_fraction", [0.0, 0.3])
def test_decayed_counts_equal_the_formula_after_every_event(seed: int, late_fraction: float) -> None:
    rng = random.Random(seed)
    events = random_events(rng, 300, late_fraction)
    state: DecayedCounts | None = None
    late = 0
    for i, (etype, ts) in enumerate(events):
        late += state is not None and ts < state.last_ts
        state = apply(state, etype, ts)
        high_water = max(t for _, t in events[: i + 1])
        assert state.last_ts == high_water
        assert_matches(feature_vector(state, high_water), reference(events[: i + 1], high_water))
        later = high_water + rng.choice([0, 1, 60_000, 5 * 3_600_000, 4 * 86_400_000, 40 * 86_400_000])
        assert_matches(feature_vector(state, later), reference(events[: i + 1], later))
    assert (late > 0) == (late_fraction > 0), "the out-of-order path was exercised only when asked"


def test_a_late_event_adds_its_decayed_weight_without_moving_the_high_water_mark() -> None:
    state = apply(None, "like", T0 + 3_600_000)
    same = apply(state, "like", T0)
    assert same is state, "apply mutates the state it is given"
    assert state.last_ts == T0 + 3_600_000
    assert state.counts["like"].total == 2
    assert state.counts["like"].values[0] == pytest.approx(1.0 + 0.25, rel=1e-12), "two 30m half-lives"
    assert feature_vector(state, T0 + 3_600_000 + 1_800_000)["like.decayed.30m"] == pytest.approx(0.625)


def test_types_are_counted_separately_and_only_seen_types_are_reported() -> None:
    state = apply(None, "like", T0)
    state = apply(state, "retweet", T0 + 86_400_000)
    state = apply(state, "like", T0 + 86_400_000)
    vector = feature_vector(state, T0 + 86_400_000)
    assert vector.keys() == set(feature_names("like")) | set(feature_names("retweet"))
    assert vector["like.total"] == 2.0
    assert vector["retweet.total"] == 1.0
    assert vector["like.decayed.24h"] == pytest.approx(1.5)
    assert vector["retweet.decayed.24h"] == 1.0


def test_the_like_count_is_likes_less_unlikes_and_never_negative() -> None:
    state = None
    for kind in ("like", "like", "retweet", "unlike", "like"):
        state = apply(state, kind, T0)
    assert state is not None
    assert like_count(feature_vector(state, T0)) == 2
    # An unlike read before the like it undoes, or with no like counted at all.
    assert like_count(feature_vector(apply(None, "unlike", T0), T0)) == 0
    assert like_count({}) == 0


def test_feature_vector_cannot_look_back_before_the_last_update() -> None:
    state = apply(None, "click", T0)
    with pytest.raises(ValueError):
        feature_vector(state, T0 - 1)


def test_unknown_engagement_types_are_refused() -> None:
    with pytest.raises(ValueError):
        apply(None, "poke", T0)
    with pytest.raises(ValueError):
        feature_names("poke")


def test_engagement_types_are_the_contracts_in_schema_order() -> None:
    # The order is each type's code in stored state: new types may only be appended.
    contract = (
        "impression like unlike retweet unretweet reply quote bookmark share click profile_click "
        "video_view dwell not_interested report"
    )
    assert ENGAGEMENT_TYPES == tuple(contract.split())


def test_feature_names_follow_the_contract() -> None:
    assert feature_names("profile_click") == [
        "profile_click.decayed.30m",
        "profile_click.decayed.24h",
        "profile_click.decayed.72h",
        "profile_click.decayed.14d",
        "profile_click.total",
    ]


def bits(state: DecayedCounts) -> tuple[int, list[tuple[str, int, bytes]]]:
    return state.last_ts, [(t, c.total, struct.pack("<4d", *c.values)) for t, c in state.counts.items()]


@pytest.mark.parametrize("seed", range(4))
def test_encode_decode_round_trips_bit_exactly_mid_stream(seed: int) -> None:
    rng = random.Random(100 + seed)
    events = random_events(rng, 400, 0.2)
    kept: DecayedCounts | None = None
    cycled: DecayedCounts | None = None
    for etype, ts in events:
        kept = apply(kept, etype, ts)
        cycled = apply(cycled, etype, ts)
        data = encode(cycled)
        cycled = decode(data)
        assert bits(cycled) == bits(kept)
        assert encode(cycled) == data
    assert kept is not None and len(kept.counts) == 4


def test_round_trip_keeps_extremes() -> None:
    state = DecayedCounts(
        last_ts=-5,
        counts={
            "report": TypeCounts(2**62, [5e-324, 1e308, 0.0, 1 / 3]),
            "impression": TypeCounts(1, [math.nextafter(1.0, 2.0), 2.0, 3.0, 4.0]),
        },
    )
    back = decode(encode(state))
    assert bits(back) == bits(state)
    assert list(back.counts) == ["report", "impression"]
    assert decode(encode(DecayedCounts(T0, {}))) == DecayedCounts(T0, {})


def test_decode_refuses_what_encode_did_not_write() -> None:
    good = encode(apply(None, "share", T0))
    for bad in (b"", good[:-1], good + b"\0", b"\x09" + good[1:], good[:9] + b"\xff" + good[10:]):
        with pytest.raises(ValueError):
            decode(bad)
