"""How strongly real-time signals (trending topics, breaking news, ...) point at a tweet.

Pure. Each signal naming the tweet adds its `weight`; the sum decays with the same half-lives as
the engagement counts, lazily from the tweet's latest signal time (as `streams.features.aggregates`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from streams.features.decay import HALF_LIVES, exponential

_LAYOUT = struct.Struct(f"<qq{len(HALF_LIVES)}d")


@dataclass
class SignalBoost:
    last_ts: int = 0
    count: int = 0
    values: list[float] = field(default_factory=lambda: [0.0] * len(HALF_LIVES))


def apply_signal(state: SignalBoost | None, weight: float, ts: int) -> SignalBoost:
    state = state or SignalBoost(last_ts=ts)
    if ts >= state.last_ts:
        elapsed = ts - state.last_ts
        state.values = [
            exponential(v, elapsed, hl) + weight
            for v, hl in zip(state.values, HALF_LIVES.values(), strict=True)
        ]
        state.last_ts = ts
    else:  # a late signal counts as decayed to the latest signal time
        elapsed = state.last_ts - ts
        state.values = [
            v + exponential(weight, elapsed, hl)
            for v, hl in zip(state.values, HALF_LIVES.values(), strict=True)
        ]
    state.count += 1
    return state


def boost_features(state: SignalBoost) -> dict[str, float]:
    features = {f"signal.boost.decayed.{label}": v for label, v in zip(HALF_LIVES, state.values, strict=True)}
    features["signal.count.total"] = float(state.count)
    return features


def encode(state: SignalBoost) -> bytes:
    return _LAYOUT.pack(state.last_ts, state.count, *state.values)


def decode(raw: bytes) -> SignalBoost:
    last_ts, count, *values = _LAYOUT.unpack(raw)
    return SignalBoost(last_ts, count, list(values))
