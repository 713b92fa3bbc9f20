"""The panels of `GET /dashboard`: seed 003's dashboard (docker/grafana/homemixer.json) computed
from this worker's own metric registry, so that it needs no Prometheus.

Pure: a `Snapshot` is what the registry held at one time, and each panel line is a function of two
consecutive snapshots, as PromQL's `rate()` and `histogram_quantile()` are of a range: a counter's
increase over the interval, the quantile of the observations made in it. `History` keeps the
points of the last few minutes; the worker takes a snapshot on a timer and the page only draws.

Every value is this worker's: Grafana sums over workers, this shows the one that answers.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from prometheus_client.metrics_core import Metric

Labels = tuple[tuple[str, str], ...]
"""A sample's labels, sorted, so that the same series has the same key in every snapshot."""
Values = dict[str, float | None]
"""A panel's value per line at one time; None where it is undefined (no observation to rank)."""

MESSAGES: Final = "homemixer_messages_total"
REQUESTS: Final = "homemixer_http_request_duration_seconds"
READS: Final = "homemixer_timeline_reads_total"
FANOUT_DELAY: Final = "homemixer_fanout_delay_seconds"
FEATURE_DELAY: Final = "homemixer_feature_delay_seconds"
CONSUMER_LAG: Final = "homemixer_consumer_lag"
LATE_EVENTS: Final = "homemixer_late_events_total"
TIMELINE_ROUTE: Final = "/timelines/{user_id}"


@dataclass(frozen=True, slots=True)
class Snapshot:
    at_s: float
    samples: Mapping[str, Mapping[Labels, float]]
    """Sample name (`..._bucket`, `..._count`, a counter's `..._total`) -> series -> value."""


def take_snapshot(families: Iterable[Metric], at_s: float, names: frozenset[str]) -> Snapshot:
    """The samples named in `names` of a registry's `collect()`, at `at_s`."""
    samples: dict[str, dict[Labels, float]] = {}
    for family in families:
        for sample in family.samples:
            if sample.name in names:
                samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return Snapshot(at_s, samples)


def _matches(labels: Labels, match: Mapping[str, str]) -> bool:
    have = dict(labels)
    return all(have.get(k, "") == v for k, v in match.items())


def increase(
    prev: Snapshot, cur: Snapshot, name: str, match: Mapping[str, str], by: Sequence[str] = ()
) -> dict[tuple[str, ...], float]:
    """How much the matching series of a counter grew from `prev` to `cur`, summed per value of the
    `by` labels. A series new in `cur` started from 0; one lower than before was reset (a restart)
    and counts from 0, as Prometheus's `increase()` has it."""
    before = prev.samples.get(name, {})
    out: dict[tuple[str, ...], float] = {}
    for labels, value in cur.samples.get(name, {}).items():
        if not _matches(labels, match):
            continue
        old = before.get(labels, 0.0)
        group = tuple(dict(labels).get(label, "") for label in by)
        out[group] = out.get(group, 0.0) + (value - old if value >= old else value)
    return out


def total_increase(prev: Snapshot, cur: Snapshot, name: str, match: Mapping[str, str]) -> float:
    return increase(prev, cur, name, match).get((), 0.0)


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The `q` quantile of observations counted in cumulative `(upper bound, count)` buckets, by
    Prometheus's rule: linear within the bucket the rank falls in, the lowest bound starting at 0,
    and the highest finite bound for a rank in the `+Inf` bucket. None with no observation (or no
    `+Inf` bucket, whose count is the total)."""
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return None
    # Counts summed from several series, each read at its own moment, can dip: keep them cumulative.
    counts, running = [], 0.0
    for _, count in ordered:
        running = max(running, count)
        counts.append(running)
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    index = next(i for i, count in enumerate(counts) if count >= rank)
    if index == len(ordered) - 1:
        return ordered[-2][0]
    upper = ordered[index][0]
    if index == 0 and upper <= 0:
        return upper
    lower, below = (0.0, 0.0) if index == 0 else (ordered[index - 1][0], counts[index - 1])
    in_bucket = counts[index] - below
    return lower + (upper - lower) * (rank - below) / in_bucket


def quantiles(
    prev: Snapshot,
    cur: Snapshot,
    histogram: str,
    qs: Sequence[float],
    match: Mapping[str, str],
    by: Sequence[str] = (),
) -> dict[tuple[tuple[str, ...], float], float | None]:
    """Each quantile of the observations a histogram made from `prev` to `cur`, per `by` group."""
    grown = increase(prev, cur, f"{histogram}_bucket", match, (*by, "le"))
    per_group: dict[tuple[str, ...], list[tuple[float, float]]] = {}
    for (*group, le), count in grown.items():
        per_group.setdefault(tuple(group), []).append((float(le), count))
    return {(group, q): histogram_quantile(q, buckets) for group, buckets in per_group.items() for q in qs}


def current(cur: Snapshot, name: str, by: Sequence[str]) -> dict[tuple[str, ...], float]:
    """A gauge's value now, summed per `by` group."""
    out: dict[tuple[str, ...], float] = {}
    for labels, value in cur.samples.get(name, {}).items():
        group = tuple(dict(labels).get(label, "") for label in by)
        out[group] = out.get(group, 0.0) + value
    return out


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def _tweet_rate(prev: Snapshot, cur: Snapshot) -> Values:
    seconds = cur.at_s - prev.at_s
    applied = total_increase(prev, cur, MESSAGES, {"topic": "content_events", "outcome": "applied"})
    posted = total_increase(prev, cur, f"{REQUESTS}_count", {"route": "/tweets", "status": "201"})
    return {"applied to content_events": applied / seconds, "POST /tweets": posted / seconds}


def _delay(histogram: str) -> Callable[[Snapshot, Snapshot], Values]:
    def lines(prev: Snapshot, cur: Snapshot) -> Values:
        found = quantiles(prev, cur, histogram, (0.5, 0.99), {})
        return {"p50": found.get(((), 0.5)), "p99": found.get(((), 0.99))}

    return lines


def _consumer_lag(prev: Snapshot, cur: Snapshot) -> Values:
    return {topic: lag for (topic,), lag in sorted(current(cur, CONSUMER_LAG, ("topic",)).items())}


def _cache_hit_rate(prev: Snapshot, cur: Snapshot) -> Values:
    reads = increase(prev, cur, READS, {}, ("cache",))
    return {"hit rate": ratio(reads.get(("hit",), 0.0), sum(reads.values()))}


READ_QUANTILES = (0.5, 0.99, 0.999)


def _read_latency(prev: Snapshot, cur: Snapshot) -> Values:
    found = quantiles(
        prev, cur, REQUESTS, READ_QUANTILES, {"route": TIMELINE_ROUTE, "status": "200"}, ("mode",)
    )
    return {f"{mode} p{q * 100:g}": value for ((mode,), q), value in sorted(found.items())}


def _dead_letters_and_late(prev: Snapshot, cur: Snapshot) -> Values:
    messages = increase(prev, cur, MESSAGES, {}, ("topic", "outcome"))
    dead = sum(n for (_, outcome), n in messages.items() if outcome == "dead_letter")
    engagements = messages.get(("engagement_events", "applied"), 0.0)
    late = total_increase(prev, cur, LATE_EVENTS, {})
    return {
        "dead-lettered share of messages": ratio(dead, sum(messages.values())),
        "late share of applied engagements": ratio(late, engagements),
    }


@dataclass(frozen=True, slots=True)
class Panel:
    """One plot: its stable id (the page's `data-panel`), title, unit (how the page formats a
    value: `/s`, `s`, `records`, `share`) and its lines' values from two snapshots."""

    id: str
    title: str
    unit: str
    lines: Callable[[Snapshot, Snapshot], Values]


# In the order of docker/grafana/homemixer.json, whose expressions each one follows.
PANELS: tuple[Panel, ...] = (
    Panel("tweet_rate", "Tweet rate", "/s", _tweet_rate),
    Panel("fanout_delay", "Fanout delay", "s", _delay(FANOUT_DELAY)),
    Panel("consumer_lag", "Consumer lag, by topic", "records", _consumer_lag),
    Panel("feature_delay", "Feature delay", "s", _delay(FEATURE_DELAY)),
    Panel("cache_hit_rate", "Cache hit rate", "share", _cache_hit_rate),
    Panel("read_latency", "Read latency of timelines (200), by mode", "s", _read_latency),
    Panel("dead_letters", "Dead letters and late events", "share", _dead_letters_and_late),
)
# The samples the panels read: a snapshot keeps only these.
PANEL_SAMPLES: frozenset[str] = frozenset(
    {
        MESSAGES,
        f"{REQUESTS}_count",
        f"{REQUESTS}_bucket",
        READS,
        f"{FANOUT_DELAY}_bucket",
        f"{FEATURE_DELAY}_bucket",
        CONSUMER_LAG,
        LATE_EVENTS,
    }
)


@dataclass(frozen=True, slots=True)
class Point:
    at_s: float
    values: Mapping[str, Values]
    """Panel id -> line -> value."""


class History:
    """The points of the last `keep` intervals. Each snapshot makes one point against the one
    before, at once, so answering the page costs no more than serialising what is kept."""

    def __init__(self, keep: int, interval_s: float) -> None:
        self.interval_s = interval_s
        self._points: deque[Point] = deque(maxlen=keep)
        self._last: Snapshot | None = None

    def add(self, snapshot: Snapshot) -> None:
        last, self._last = self._last, snapshot
        if last is None or snapshot.at_s <= last.at_s:
            return
        values = {panel.id: panel.lines(last, snapshot) for panel in PANELS}
        self._points.append(Point(snapshot.at_s, values))

    def to_json(self, now_s: float) -> dict[str, Any]:
        """`{"now_s", "window_s", "interval_s", "panels": [{"id", "title", "unit", "lines":
        [{"label", "points": [[at_s, value or null], ...]}]}]}`; a line absent at a point (a topic
        not owned then) is null there, so the page breaks the line rather than join across."""
        panels = []
        for panel in PANELS:
            labels = list(dict.fromkeys(label for p in self._points for label in p.values[panel.id]))
            lines = [
                {
                    "label": label,
                    "points": [[p.at_s, _finite(p.values[panel.id].get(label))] for p in self._points],
                }
                for label in labels
            ]
            panels.append({"id": panel.id, "title": panel.title, "unit": panel.unit, "lines": lines})
        window_s = (self._points.maxlen or 0) * self.interval_s
        return {"now_s": now_s, "window_s": window_s, "interval_s": self.interval_s, "panels": panels}


def _finite(value: float | None) -> float | None:
    # JSON has no NaN or infinity.
    return value if value is not None and math.isfinite(value) else None
