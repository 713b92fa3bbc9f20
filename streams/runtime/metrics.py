"""Process-wide counters and gauges, rendered in the Prometheus text format for `/metrics`."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Labels = tuple[tuple[str, str], ...]


@dataclass
class Histogram:
    """One histogram series: counts per bucket (not cumulative: `observe` is on hot paths, so the
    cumulative counts Prometheus wants are summed when rendered)."""

    bounds: tuple[float, ...]
    counts: list[int]
    total: float = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def lines(self, name: str, labels: Labels) -> list[str]:
        out, cumulative = [], 0
        for bound, n in zip((*(f"{b:g}" for b in self.bounds), "+Inf"), self.counts, strict=True):
            cumulative += n
            out.append(f"{name}_bucket{_labels((*labels, ('le', bound)))} {cumulative}")
        out.append(f"{name}_sum{_labels(labels)} {self.total:g}")
        out.append(f"{name}_count{_labels(labels)} {cumulative}")
        return out


class Metrics:
    def __init__(self) -> None:
        self._help: dict[str, tuple[str, str]] = {}
        self._values: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._histograms: dict[str, dict[Labels, Histogram]] = defaultdict(dict)

    def describe(self, name: str, kind: str, help_text: str) -> None:
        self._help[name] = (kind, help_text)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        series = self._values[name]
        key = tuple(sorted(labels.items()))
        series[key] = series.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        self._values[name][tuple(sorted(labels.items()))] = value

    def observe(self, name: str, value: float, buckets: Sequence[float], **labels: str) -> None:
        """Count `value` in a histogram with upper bounds `buckets` (ascending), Prometheus style."""
        series = self._histograms[name]
        key = tuple(sorted(labels.items()))
        histogram = series.get(key)
        if histogram is None:
            histogram = series[key] = Histogram(tuple(buckets), [0] * (len(buckets) + 1))
        histogram.observe(value)

    def value(self, name: str, **labels: str) -> float:
        return self._values.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        for name in sorted({*self._values, *self._histograms}):
            kind, help_text = self._help.get(name, ("untyped", name))
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in sorted(self._values.get(name, {}).items()):
                lines.append(f"{name}{_labels(labels)} {value:g}")
            for labels, histogram in sorted(self._histograms.get(name, {}).items()):
                lines.extend(histogram.lines(name, labels))
        return "\n".join(lines) + "\n"


def _labels(labels: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return "{" + inner + "}" if inner else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# Seconds; the contract's freshness target (p99 <= 1 s) falls between two bounds.
FEATURE_DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

METRICS = Metrics()
METRICS.describe(
    "homemixer_messages_total",
    "counter",
    "Consumed source messages by topic and outcome (applied, duplicate, dead_letter).",
)
METRICS.describe(
    "homemixer_feature_delay_seconds",
    "histogram",
    "Wall-clock time from an entity's newest event time to its real_time_features message.",
)
