"""Decayed engagement counts of one entity (a tweet, user, author or user x author pair).

As in Twitter's real-time aggregates, a count is stored as its value at the entity's last update and
decayed lazily: exponential decay composes, so `v * exp(-dt ln2 / hl)` brought forward from the last
update equals the contract's `sum_i exp(-(ts - ts_i) ln2 / hl)` recomputed from every event, without
keeping the events. Updates run four times per engagement event, so `apply` works in place and
`encode`/`decode` use one fixed binary layout: both are on every update's path.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from math import exp

from streams.features.decay import HALF_LIVES, LN2
from streams.ingest.schemas import topic_schema

ENGAGEMENT_TYPES: tuple[str, ...] = topic_schema("engagement_events").types

# The position in the schema's enum is a type's code in stored state, so new types must be appended.
_CODE = {t: i for i, t in enumerate(ENGAGEMENT_TYPES)}
_RATES = tuple(LN2 / hl for hl in HALF_LIVES.values())
_N = len(_RATES)
_NAMES = {t: (tuple(f"{t}.decayed.{hl}" for hl in HALF_LIVES), f"{t}.total") for t in ENGAGEMENT_TYPES}

# apply() is unrolled for the contract's four half-lives.
if _N != 4:
    raise RuntimeError(f"streams.features.aggregates expects 4 half-lives, HALF_LIVES has {_N}")
_R0, _R1, _R2, _R3 = _RATES

# Stored layout: version, last_ts, then per type (code, total, one double per half-life). Doubles as
# raw IEEE bits make decode(encode(s)) bit-exact; the version guards a change of half-lives.
FORMAT_VERSION = 1
_HEADER_SIZE = struct.calcsize("<Bq")
_RECORD_SIZE = struct.calcsize(f"<Bq{_N}d")
_RECORD_LEN = 2 + _N


@dataclass(slots=True)
class TypeCounts:
    total: int
    # The decayed sum as of the owning state's last_ts, one per half-life in HALF_LIVES order.
    values: list[float]


@dataclass(slots=True)
class DecayedCounts:
    # Event-time high-water mark: the max ts of all applied events.
    last_ts: int
    counts: dict[str, TypeCounts]


def _check_type(engagement_type: str) -> None:
    if engagement_type not in _CODE:
        raise ValueError(f"unknown engagement type {engagement_type!r}")


def apply(state: DecayedCounts | None, engagement_type: str, ts: int) -> DecayedCounts:
    """Count one event: mutates and returns `state`, or returns a new state when it is None."""
    if engagement_type not in _CODE:
        raise ValueError(f"unknown engagement type {engagement_type!r}")
    if state is None:
        state = DecayedCounts(ts, {})
    counts = state.counts
    tc = counts.get(engagement_type)
    dt = ts - state.last_ts
    # Unrolled for the four half-lives and in place: measured at under half the cost of list
    # comprehensions, and this runs four times per engagement event.
    if dt >= 0:
        if dt:
            f0, f1, f2, f3 = exp(-dt * _R0), exp(-dt * _R1), exp(-dt * _R2), exp(-dt * _R3)
            for other in counts.values():
                v = other.values
                v[0] *= f0
                v[1] *= f1
                v[2] *= f2
                v[3] *= f3
        state.last_ts = ts
        a0 = a1 = a2 = a3 = 1.0
    else:
        # A late event is added already decayed to last_ts: moving last_ts back would make every
        # later read decay the other events from the wrong time.
        a0, a1, a2, a3 = exp(dt * _R0), exp(dt * _R1), exp(dt * _R2), exp(dt * _R3)
    if tc is None:
        counts[engagement_type] = TypeCounts(1, [a0, a1, a2, a3])
    else:
        tc.total += 1
        v = tc.values
        v[0] += a0
        v[1] += a1
        v[2] += a2
        v[3] += a3
    return state


def feature_vector(state: DecayedCounts, at_ts: int) -> dict[str, float]:
    """`<type>.decayed.<hl>` and `<type>.total` for every type seen, as of `at_ts` >= last_ts."""
    dt = at_ts - state.last_ts
    if dt < 0:
        # Events between at_ts and last_ts are already folded in and cannot be taken out.
        raise ValueError(f"at_ts {at_ts} is before the last update {state.last_ts}")
    f0, f1, f2, f3 = exp(-dt * _R0), exp(-dt * _R1), exp(-dt * _R2), exp(-dt * _R3)
    out: dict[str, float] = {}
    for t, tc in state.counts.items():
        (n0, n1, n2, n3), total_name = _NAMES[t]
        v = tc.values
        out[n0] = v[0] * f0
        out[n1] = v[1] * f1
        out[n2] = v[2] * f2
        out[n3] = v[3] * f3
        out[total_name] = float(tc.total)
    return out


def like_count(features: Mapping[str, float]) -> int:
    """Likes a tweet shows: its likes less its unlikes (an unlike may be counted before the like it
    undoes arrives, or without one ever counted), never below zero."""
    _, likes = _NAMES["like"]
    _, unlikes = _NAMES["unlike"]
    return max(0, int(features.get(likes, 0.0) - features.get(unlikes, 0.0)))


def feature_names(engagement_type: str) -> list[str]:
    _check_type(engagement_type)
    decayed_names, total_name = _NAMES[engagement_type]
    return [*decayed_names, total_name]


@cache
def _layout(n_types: int) -> struct.Struct:
    # One struct per number of types, so a state is one pack/unpack call rather than one per type.
    return struct.Struct("<Bq" + f"Bq{_N}d" * n_types)


def encode(state: DecayedCounts) -> bytes:
    flat: list[int | float] = [FORMAT_VERSION, state.last_ts]
    for t, tc in state.counts.items():
        flat.append(_CODE[t])
        flat.append(tc.total)
        flat.extend(tc.values)
    return _layout(len(state.counts)).pack(*flat)


def decode(data: bytes) -> DecayedCounts:
    n_types, extra = divmod(len(data) - _HEADER_SIZE, _RECORD_SIZE)
    # The type count is bounded so that garbage cannot grow the layout cache.
    if extra or not 0 <= n_types <= len(ENGAGEMENT_TYPES) or data[0] != FORMAT_VERSION:
        raise ValueError(f"not a version {FORMAT_VERSION} DecayedCounts ({len(data)} bytes)")
    flat = _layout(n_types).unpack(data)
    types = ENGAGEMENT_TYPES
    counts: dict[str, TypeCounts] = {}
    try:
        for i in range(2, 2 + n_types * _RECORD_LEN, _RECORD_LEN):
            counts[types[flat[i]]] = TypeCounts(
                flat[i + 1], [flat[i + 2], flat[i + 3], flat[i + 4], flat[i + 5]]
            )
    except IndexError:
        raise ValueError("an encoded DecayedCounts has an unknown engagement type code") from None
    return DecayedCounts(flat[1], counts)


# Engagement rate per impression uses the 24h half-life: fresh enough to follow a tweet's day,
# smooth enough that a handful of impressions does not swing it.
RATE_HALF_LIFE = "24h"


def performance_features(features: dict[str, float]) -> dict[str, float]:
    """Content performance: each engagement type's decayed count per decayed impression."""
    impressions = features.get(f"impression.decayed.{RATE_HALF_LIFE}", 0.0)
    if impressions <= 0.0:
        return {}
    suffix = f".decayed.{RATE_HALF_LIFE}"
    return {
        f"rate.{name[: -len(suffix)]}.{RATE_HALF_LIFE}": value / impressions
        for name, value in features.items()
        if name.endswith(suffix) and not name.startswith("impression.")
    }


def scoring_fields(features: dict[str, float], last_ts: int) -> dict[str, float]:
    """What the ranker reads of an entity: each type's 24h-decayed count, and the time it is as of
    (the reader decays all of them alike to its own clock, which leaves their ratios unchanged)."""
    suffix = f".decayed.{RATE_HALF_LIFE}"
    fields = {name[: -len(suffix)]: value for name, value in features.items() if name.endswith(suffix)}
    fields["ts"] = float(last_ts)
    return fields
