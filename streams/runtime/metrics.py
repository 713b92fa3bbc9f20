"""Process-wide counters and gauges, rendered in the Prometheus text format for `/metrics`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

Labels = tuple[tuple[str, str], ...]
# A histogram's series carry their name's suffix (_bucket, _sum, _count) as this pseudo-label.
SUFFIX = "__suffix"


class Metrics:
    def __init__(self) -> None:
        self._help: dict[str, tuple[str, str]] = {}
        self._values: dict[str, dict[Labels, float]] = defaultdict(dict)

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
        # One series per suffix and bound, kept under the histogram's name in insertion order
        # (bounds ascending, then _sum and _count), which is the order the text format wants.
        for bound in buckets:
            self.inc(name, 1.0 if value <= bound else 0.0, **labels, le=f"{bound:g}", __suffix="_bucket")
        self.inc(name, 1.0, **labels, le="+Inf", __suffix="_bucket")
        self.inc(name, value, **labels, __suffix="_sum")
        self.inc(name, 1.0, **labels, __suffix="_count")

    def value(self, name: str, **labels: str) -> float:
        return self._values.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        for name in sorted(self._values):
            kind, help_text = self._help.get(name, ("untyped", name))
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            series = self._values[name].items()
            for labels, value in series if kind == "histogram" else sorted(series):
                suffix = dict(labels).get(SUFFIX, "")
                shown = [(k, v) for k, v in labels if k != SUFFIX]
                lines.append(f"{name}{suffix}{_labels(shown)} {value:g}")
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
