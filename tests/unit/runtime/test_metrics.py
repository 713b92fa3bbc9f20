"""The registry `/metrics` renders, and the consumer lag's arithmetic against a broker's reports."""

from __future__ import annotations

from prometheus_client import Histogram
from prometheus_client.parser import text_string_to_metric_families

from streams.runtime.consumer_lag import records_behind
from streams.runtime.metrics import REGISTRY, render


def test_the_registry_renders_histograms_and_process_metrics_without_created_series() -> None:
    delay = Histogram("test_delay_seconds", "A delay.", ["node"], buckets=(0.1, 0.5, 1.0), registry=REGISTRY)
    try:
        for value in (0.05, 0.3, 2.0):
            delay.labels("a").observe(value)
        families = {f.name: f for f in text_string_to_metric_families(render().decode())}
    finally:
        REGISTRY.unregister(delay)
    buckets = {
        s.labels["le"]: s.value for s in families["test_delay_seconds"].samples if s.name.endswith("_bucket")
    }
    assert buckets == {"0.1": 1, "0.5": 2, "1.0": 2, "+Inf": 3}
    assert "process_cpu_seconds" in families and "python_info" in families
    assert not any(name.endswith("_created") for name in families)


def test_lag_is_the_end_minus_the_committed_offset() -> None:
    assert records_behind(reported_end=120, committed=100, highest_read=110) == 20
    assert records_behind(reported_end=100, committed=100, highest_read=99) == 0


def test_a_too_low_end_offset_never_makes_the_lag_negative_or_hides_what_was_read() -> None:
    # Tansu after multi-record batches: the end it reports is below what the worker has read.
    assert records_behind(reported_end=90, committed=100, highest_read=None) == 0
    assert records_behind(reported_end=90, committed=100, highest_read=129) == 30
