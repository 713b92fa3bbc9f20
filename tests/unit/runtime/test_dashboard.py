"""The dashboard's arithmetic: quantiles from buckets and rates from counter deltas, as PromQL has
them, over snapshots of a real `prometheus_client` registry."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.runtime.dashboard import (
    PANEL_SAMPLES,
    PANELS,
    History,
    Snapshot,
    histogram_quantile,
    increase,
    take_snapshot,
)

INF = math.inf


class Worker:
    """The metrics the panels read, on a registry of their own, with the worker's names and labels."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter("homemixer_messages", "m", ["topic", "outcome"], registry=self.registry)
        self.requests = Histogram(
            "homemixer_http_request_duration_seconds",
            "r",
            ["route", "mode", "status"],
            buckets=(0.01, 0.1, 1.0),
            registry=self.registry,
        )
        self.reads = Counter("homemixer_timeline_reads", "t", ["cache"], registry=self.registry)
        self.fanout = Histogram(
            "homemixer_fanout_delay_seconds", "f", buckets=(1.0, 10.0, 60.0), registry=self.registry
        )
        self.lag = Gauge("homemixer_consumer_lag", "l", ["topic", "partition"], registry=self.registry)
        self.late = Counter("homemixer_late_events", "e", ["topic"], registry=self.registry)

    def snapshot(self, at_s: float) -> Snapshot:
        return take_snapshot(self.registry.collect(), at_s, PANEL_SAMPLES)


def test_a_quantile_interpolates_within_its_bucket_as_prometheus_does() -> None:
    buckets = [(0.1, 10.0), (1.0, 30.0), (INF, 40.0)]
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.1)  # rank 10: top of the first
    assert histogram_quantile(0.125, buckets) == pytest.approx(0.05)  # the first bucket starts at 0
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1 + 0.9 * (20 - 10) / 20)
    # A rank in the +Inf bucket is the highest finite bound: nothing says how far beyond it lies.
    assert histogram_quantile(0.99, buckets) == 1.0
    assert histogram_quantile(0.5, list(reversed(buckets))) == histogram_quantile(0.5, buckets)


def test_no_observation_or_no_inf_bucket_has_no_quantile() -> None:
    assert histogram_quantile(0.5, [(0.1, 0.0), (INF, 0.0)]) is None
    assert histogram_quantile(0.5, [(0.1, 3.0), (1.0, 5.0)]) is None
    assert histogram_quantile(0.5, []) is None


def test_counts_that_dip_are_kept_cumulative() -> None:
    # Summed from series read at different moments, a lower bucket can exceed a higher one.
    assert histogram_quantile(0.5, [(0.1, 6.0), (1.0, 5.0), (INF, 6.0)]) == pytest.approx(0.05)


def test_an_increase_counts_new_series_from_zero_and_a_reset_from_zero() -> None:
    before = Snapshot(0.0, {"c": {(("k", "a"),): 5.0, (("k", "b"),): 9.0}})
    after = Snapshot(1.0, {"c": {(("k", "a"),): 8.0, (("k", "b"),): 2.0, (("k", "c"),): 4.0}})
    assert increase(before, after, "c", {}, ("k",)) == {("a",): 3.0, ("b",): 2.0, ("c",): 4.0}
    assert increase(before, after, "c", {"k": "a"}) == {(): 3.0}
    assert increase(before, after, "missing", {}) == {}


def values(history: History, now_s: float) -> dict[str, dict[str, list[float | None]]]:
    body = history.to_json(now_s)
    return {
        panel["id"]: {line["label"]: [v for _, v in line["points"]] for line in panel["lines"]}
        for panel in body["panels"]
    }


def test_the_panels_follow_the_registry_interval_by_interval() -> None:
    worker = Worker()
    history = History(keep=10, interval_s=2.0)
    history.add(worker.snapshot(100.0))  # the first snapshot only starts the first interval
    assert all(not panel["lines"] for panel in history.to_json(100.0)["panels"])

    worker.messages.labels("content_events", "applied").inc(10)
    worker.messages.labels("content_events", "dead_letter").inc(10)
    worker.messages.labels("engagement_events", "applied").inc(20)
    worker.late.labels("engagement_events").inc(5)
    worker.requests.labels("/tweets", "", "201").observe(0.005)
    for seconds in [0.005] * 50 + [0.05] * 49 + [0.5]:
        worker.requests.labels("/timelines/{user_id}", "latest", "200").observe(seconds)
    worker.requests.labels("/timelines/{user_id}", "ranked", "500").observe(0.5)  # not a read served
    worker.reads.labels("hit").inc(3)
    worker.reads.labels("rebuild").inc(1)
    worker.fanout.observe(0.5)
    worker.lag.labels("content_events", "0").set(7)
    worker.lag.labels("content_events", "1").set(3)
    history.add(worker.snapshot(102.0))
    history.add(worker.snapshot(104.0))  # nothing happened in this interval

    got = values(history, 104.0)
    assert got["tweet_rate"] == {"applied to content_events": [5.0, 0.0], "POST /tweets": [0.5, 0.0]}
    assert got["fanout_delay"]["p50"] == [pytest.approx(0.5), None]  # one delay, 0.5 of the way up
    assert got["consumer_lag"] == {"content_events": [10.0, 10.0]}  # a gauge: summed per topic
    assert got["cache_hit_rate"] == {"hit rate": [0.75, None]}
    latency = got["read_latency"]
    assert set(latency) == {"latest p50", "latest p99", "latest p99.9"}
    assert latency["latest p50"][0] == pytest.approx(0.01)
    assert latency["latest p99"][0] == pytest.approx(0.01 + 0.09 * 49 / 49)
    assert latency["latest p99.9"][0] == pytest.approx(0.1 + 0.9 * (99.9 - 99) / 1)
    assert got["dead_letters"] == {
        "dead-lettered share of messages": [0.25, None],
        "late share of applied engagements": [0.25, None],
    }


def test_history_keeps_the_newest_points_and_answers_the_window() -> None:
    worker = Worker()
    history = History(keep=3, interval_s=2.0)
    for at_s in range(0, 12, 2):
        worker.reads.labels("hit").inc()
        history.add(worker.snapshot(float(at_s)))
    body = history.to_json(10.5)
    assert body["window_s"] == 6.0 and body["now_s"] == 10.5 and body["interval_s"] == 2.0
    [rate] = [p for p in body["panels"] if p["id"] == "cache_hit_rate"]
    assert [t for t, _ in rate["lines"][0]["points"]] == [6.0, 8.0, 10.0]
    assert [p["id"] for p in body["panels"]] == [panel.id for panel in PANELS]


def test_a_snapshot_no_later_than_the_last_makes_no_point() -> None:
    worker = Worker()
    history = History(keep=3, interval_s=2.0)
    history.add(worker.snapshot(5.0))
    history.add(worker.snapshot(5.0))
    assert all(not panel["lines"] for panel in history.to_json(5.0)["panels"])
