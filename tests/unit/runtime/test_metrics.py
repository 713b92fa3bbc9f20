"""The Prometheus text rendering of streams/runtime/metrics.py, histograms included."""

from __future__ import annotations

from streams.runtime.metrics import Metrics


def test_a_histogram_renders_cumulative_buckets_sum_and_count_under_one_type_line() -> None:
    metrics = Metrics()
    metrics.describe("delay_seconds", "histogram", "A delay.")
    for value in (0.05, 0.3, 2.0):
        metrics.observe("delay_seconds", value, (0.1, 0.5, 1.0), node="a")
    assert metrics.render().splitlines() == [
        "# HELP delay_seconds A delay.",
        "# TYPE delay_seconds histogram",
        'delay_seconds_bucket{node="a",le="0.1"} 1',
        'delay_seconds_bucket{node="a",le="0.5"} 2',
        'delay_seconds_bucket{node="a",le="1"} 2',
        'delay_seconds_bucket{node="a",le="+Inf"} 3',
        'delay_seconds_sum{node="a"} 2.35',
        'delay_seconds_count{node="a"} 3',
    ]
