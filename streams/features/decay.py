"""Decay functions for time-weighted features, as plain functions chosen per feature family by name.

Engagement counts use Twitter's real-time aggregate half-lives (CONTRACT.md, "Feature names"); other
families (sessions, signals) may want a count that reaches zero (linear) or one that fades slowly
and never vanishes (logarithmic). Everything is pure: elapsed time is passed in, never read from a
clock, so replaying a partition gives the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

LN2 = math.log(2.0)
HOUR_MS = 3_600_000

# Twitter's real-time aggregate half-lives, in ms; the order is the order of stored decayed values.
HALF_LIVES: dict[str, int] = {
    "30m": 1_800_000,
    "24h": 86_400_000,
    "72h": 259_200_000,
    "14d": 1_209_600_000,
}

# (value, elapsed_ms, parameter_ms) -> decayed value. A Callable alias rather than a Protocol so
# that functions whose third parameter has a descriptive name (half_life_ms, ...) still match.
DecayFn: TypeAlias = Callable[[float, float, float], float]


def _check(elapsed_ms: float, parameter_ms: float) -> None:
    # Decaying backwards would inflate a value; an out-of-order event is the caller's to handle.
    if elapsed_ms < 0:
        raise ValueError(f"elapsed_ms must be >= 0, got {elapsed_ms}")
    if parameter_ms <= 0:
        raise ValueError(f"the decay parameter must be > 0 ms, got {parameter_ms}")


def exponential(value: float, elapsed_ms: float, half_life_ms: float) -> float:
    """Halves every `half_life_ms`: composes exactly, so a stored value can be decayed lazily."""
    _check(elapsed_ms, half_life_ms)
    return value * math.exp(-elapsed_ms * LN2 / half_life_ms)


def exponential_factors(elapsed_ms: npt.NDArray[np.float64], half_life_ms: float) -> npt.NDArray[np.float64]:
    """What `exponential` multiplies a value by, for many elapsed times at once (a ranked request
    decays a thousand stored values); negative elapsed times count as none."""
    if half_life_ms <= 0:
        raise ValueError(f"the decay parameter must be > 0 ms, got {half_life_ms}")
    return np.exp(-np.maximum(0.0, elapsed_ms) * (LN2 / half_life_ms))


def linear(value: float, elapsed_ms: float, lifetime_ms: float) -> float:
    """Falls in a straight line to exactly zero at `lifetime_ms`, and stays there."""
    _check(elapsed_ms, lifetime_ms)
    return value * max(0.0, 1.0 - elapsed_ms / lifetime_ms)


def logarithmic(value: float, elapsed_ms: float, scale_ms: float) -> float:
    """Fades ever more slowly and never reaches zero: for long-lived interests."""
    _check(elapsed_ms, scale_ms)
    return value / (1.0 + math.log1p(elapsed_ms / scale_ms))


DECAY_FUNCTIONS: dict[str, DecayFn] = {
    "exponential": exponential,
    "linear": linear,
    "logarithmic": logarithmic,
}


def register_decay(name: str, fn: DecayFn) -> None:
    """Add a custom decay; a name is never silently rebound, since features are named after it."""
    if name in DECAY_FUNCTIONS:
        raise ValueError(f"a decay function named {name!r} is already registered")
    DECAY_FUNCTIONS[name] = fn
