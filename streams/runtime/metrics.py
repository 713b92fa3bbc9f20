"""The worker's Prometheus metrics, on `prometheus_client`, in a registry of its own.

Not the library's global registry: a process that imports the app next to other code using
`prometheus_client` (a test, a bench) would see its metrics mixed in, and registering the same
name twice there raises. Each module that measures something defines its metric objects on
`REGISTRY`, beside the code they measure, and `GET /metrics` renders them all with `generate_latest`.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

# Every counter and histogram would also export a `_created` gauge per series: in the classic
# text format Prometheus stores those as series of their own, doubling the count for nothing.
disable_created_metrics()  # type: ignore[no-untyped-call]  # (prometheus_client leaves it unannotated)

REGISTRY = CollectorRegistry()
# CPU, memory, open files, start time; the interpreter's version; collections per generation.
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# The classic text format, the one `generate_latest` writes and every Prometheus version reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Seconds from an event's time to its effect (a feature message, a timeline delivery): the
# contract's freshness target (p99 <= 1 s) and seed 003's fanout targets (p99 10 s, alert at
# 60 s) each fall on a bound, so `histogram_quantile` and the alerts compare against real edges.
EVENT_DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def render() -> bytes:
    """The registry in the Prometheus text format (`CONTENT_TYPE`)."""
    return generate_latest(REGISTRY)
