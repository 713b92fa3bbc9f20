"""Decay functions against their closed forms, and the registry's refusal to rebind a name."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import pytest

from streams.features.decay import (
    DECAY_FUNCTIONS,
    HALF_LIVES,
    DecayFn,
    exponential,
    linear,
    logarithmic,
    register_decay,
)

HOUR_MS = 3_600_000


def test_half_lives_are_twitters_in_storage_order() -> None:
    assert list(HALF_LIVES.items()) == [
        ("30m", 30 * 60 * 1000),
        ("24h", 24 * HOUR_MS),
        ("72h", 72 * HOUR_MS),
        ("14d", 14 * 24 * HOUR_MS),
    ]


def test_exponential_halves_every_half_life_and_composes() -> None:
    assert exponential(8.0, 0, HOUR_MS) == 8.0
    assert exponential(8.0, HOUR_MS, HOUR_MS) == pytest.approx(4.0, rel=1e-12)
    assert exponential(8.0, 3 * HOUR_MS, HOUR_MS) == pytest.approx(1.0, rel=1e-12)
    rng = random.Random(7)
    for _ in range(500):
        v, a, b = rng.uniform(0, 1e6), rng.uniform(0, 1e9), rng.uniform(0, 1e9)
        hl = rng.choice(list(HALF_LIVES.values()))
        # Independent closed form: v * 2^(-t/hl).
        assert exponential(v, a, hl) == pytest.approx(v * 0.5 ** (a / hl), rel=1e-9, abs=1e-300)
        # Lazy decay relies on this: decaying in two steps equals decaying once.
        two_steps = exponential(exponential(v, a, hl), b, hl)
        assert two_steps == pytest.approx(exponential(v, a + b, hl), rel=1e-9, abs=1e-300)


def test_linear_reaches_zero_at_its_lifetime_and_stays_there() -> None:
    assert linear(10.0, 0, 1000) == 10.0
    assert linear(10.0, 250, 1000) == pytest.approx(7.5)
    assert linear(10.0, 500, 1000) == pytest.approx(5.0)
    assert linear(10.0, 1000, 1000) == 0.0
    assert linear(10.0, 5000, 1000) == 0.0, "never negative past the lifetime"
    # A straight line: equal steps lose equal amounts.
    points = [linear(3.0, t, 1000) for t in range(0, 1001, 100)]
    steps = [a - b for a, b in zip(points, points[1:], strict=False)]
    assert all(s == pytest.approx(0.3) for s in steps)


def test_logarithmic_fades_ever_more_slowly_and_never_vanishes() -> None:
    assert logarithmic(10.0, 0, 1000) == 10.0
    # 1 + ln(1 + t/s) = 2 at t = s(e - 1).
    assert logarithmic(10.0, 1000 * (math.e - 1), 1000) == pytest.approx(5.0, rel=1e-12)
    points = [logarithmic(1.0, t, 1000) for t in (0, 1e3, 1e4, 1e5, 1e6, 1e9, 1e15)]
    assert all(a > b for a, b in zip(points, points[1:], strict=False))
    assert points[-1] > 0
    assert logarithmic(1.0, 1e12, 1000) > exponential(1.0, 1e12, 1e6), "outlasts exponential"
    drops = [a - b for a, b in zip(points[1:4], points[2:5], strict=False)]
    assert drops[0] > drops[1] > drops[2], "each decade loses less than the one before"


@pytest.mark.parametrize("fn", [exponential, linear, logarithmic])
def test_decay_refuses_negative_elapsed_and_non_positive_parameter(fn: DecayFn) -> None:
    with pytest.raises(ValueError):
        fn(1.0, -1, 1000)
    with pytest.raises(ValueError):
        fn(1.0, 10, 0)
    assert fn(1.0, 0, 1000) == 1.0


@pytest.fixture
def scratch_name() -> Iterator[str]:
    name = "test_step"
    yield name
    DECAY_FUNCTIONS.pop(name, None)


def test_registry_selects_by_name_and_refuses_duplicates(scratch_name: str) -> None:
    assert DECAY_FUNCTIONS["exponential"] is exponential
    assert DECAY_FUNCTIONS["linear"] is linear
    assert DECAY_FUNCTIONS["logarithmic"] is logarithmic

    def step(value: float, elapsed_ms: float, cutoff_ms: float) -> float:
        return value if elapsed_ms < cutoff_ms else 0.0

    register_decay(scratch_name, step)
    assert DECAY_FUNCTIONS[scratch_name](2.0, 5, 10) == 2.0
    assert DECAY_FUNCTIONS[scratch_name](2.0, 10, 10) == 0.0
    with pytest.raises(ValueError):
        register_decay(scratch_name, linear)
    with pytest.raises(ValueError):
        register_decay("exponential", linear)
    assert DECAY_FUNCTIONS[scratch_name] is step, "a refused registration changes nothing"
    assert DECAY_FUNCTIONS["exponential"] is exponential
