"""Dwell-time statistics of a window: exact count, sum, min, max; percentiles from a DDSketch."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypedDict, cast

from ddsketch import DDSketch
from ddsketch.store import DenseStore

from streams.features.windows.stored import StoredState

SKETCH_RELATIVE_ACCURACY = 0.01
"""A dwell percentile is within 1% of the exact value (DDSketch's relative-error guarantee)."""

P50, P90, P99 = 0.50, 0.90, 0.99
"""The dwell percentiles a window reports."""


class DwellSummary(TypedDict):
    count: int
    sum: int
    avg: float | None
    min: int | None
    max: int | None
    p50: float | None
    p90: float | None
    p99: float | None


def _store_bins(store: DenseStore) -> list[list[int]]:
    """The non-empty bins of a DDSketch store as sorted [key, count] pairs.

    Only the bins' contents matter for quantiles; the store's offset and spare capacity depend on
    the order values arrived in, so they are left out and the encoding is canonical.
    """
    return [[index + store.offset, int(n)] for index, n in enumerate(store.bins) if n]


def _fill_store(store: DenseStore, bins: Iterable[list[int]]) -> None:
    for key, n in bins:
        store.add(int(key), float(n))


class DwellStats(StoredState):
    """Dwell-time aggregations of one window: exact count/sum/min/max, approximate percentiles.

    Dwell is integer milliseconds (CONTRACT.md), so the sum is an exact int: merging in any
    order gives the same state, which float sums would not. Percentiles come from a DDSketch
    (relative accuracy `SKETCH_RELATIVE_ACCURACY`), which merges without losing accuracy, so
    per-partition or per-window stats can be combined. A quantile is the value of rank
    `floor(q * (count - 1))` in the sorted values, within the relative accuracy, clamped to the
    exact [min, max]; quantiles 0 and 1 are the exact min and max.

    The protobuf that ddsketch can serialise to is not a dependency here, so the sketch is
    serialised as its non-empty bins (positive, negative, zero count).
    """

    __slots__ = ("_count", "_sum", "_min", "_max", "_sketch")

    def __init__(self) -> None:
        self._count = 0
        self._sum = 0
        self._min: int | None = None
        self._max: int | None = None
        self._sketch = DDSketch(SKETCH_RELATIVE_ACCURACY)

    @property
    def count(self) -> int:
        return self._count

    @property
    def sum(self) -> int:
        return self._sum

    @property
    def min(self) -> int | None:
        return self._min

    @property
    def max(self) -> int | None:
        return self._max

    @property
    def avg(self) -> float | None:
        return self._sum / self._count if self._count else None

    def add(self, value: int) -> None:
        self._count += 1
        self._sum += value
        self._min = value if self._min is None else min(self._min, value)
        self._max = value if self._max is None else max(self._max, value)
        self._sketch.add(value)

    def merge(self, other: DwellStats) -> None:
        """Fold `other` into this one, as if its values had been added here."""
        if other._count == 0:
            return
        self._count += other._count
        self._sum += other._sum
        self._min = other._min if self._min is None else min(self._min, cast(int, other._min))
        self._max = other._max if self._max is None else max(self._max, cast(int, other._max))
        self._sketch.merge(other._sketch)

    def quantile(self, q: float) -> float | None:
        """The approximate value at quantile `q` (0..1); None when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        if self._min is None or self._max is None:
            return None
        # The extremes are known exactly; the sketch would answer with their bins' values.
        if q == 0.0:
            return float(self._min)
        if q == 1.0:
            return float(self._max)
        value = self._sketch.get_quantile_value(q)
        if value is None:
            return None
        # The sketch answers with a bin's representative value; the true quantile lies within
        # [min, max], so clamping can only bring the answer closer.
        return float(min(max(value, self._min), self._max))

    def to_dict(self) -> DwellSummary:
        return {
            "count": self._count,
            "sum": self._sum,
            "avg": self.avg,
            "min": self._min,
            "max": self._max,
            "p50": self.quantile(P50),
            "p90": self.quantile(P90),
            "p99": self.quantile(P99),
        }

    def to_state(self) -> dict[str, Any]:
        sketch = self._sketch
        return {
            "n": self._count,
            "sum": self._sum,
            "min": self._min,
            "max": self._max,
            "pos": _store_bins(cast(DenseStore, sketch._store)),
            "neg": _store_bins(cast(DenseStore, sketch._negative_store)),
            "zero": int(sketch._zero_count),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DwellStats:
        stats = cls()
        stats._count = int(state["n"])
        stats._sum = int(state["sum"])
        stats._min = state["min"]
        stats._max = state["max"]
        sketch = stats._sketch
        _fill_store(cast(DenseStore, sketch._store), state["pos"])
        _fill_store(cast(DenseStore, sketch._negative_store), state["neg"])
        sketch._zero_count = float(state["zero"])
        # The sketch's own summary fields drive get_quantile_value and merge.
        sketch._count = float(stats._count)
        sketch._sum = float(stats._sum)
        sketch._min = float("+inf") if stats._min is None else float(stats._min)
        sketch._max = float("-inf") if stats._max is None else float(stats._max)
        return stats

    def __repr__(self) -> str:
        return f"DwellStats({self.to_dict()})"
