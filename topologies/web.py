"""Operational views: readiness and Prometheus metrics."""

from __future__ import annotations

import time
from typing import Any, cast

from faust.web import Request, Response, View
from prometheus_client import Gauge

from streams.app import app, redis_client
from streams.ingest.codec import encode_json
from streams.ranked.bandit_store import bucket_metrics
from streams.ranked.served_outcomes import load_calibrator
from streams.runtime.consumer_lag import partition_lags
from streams.runtime.metrics import CONTENT_TYPE, REGISTRY, render
from topologies.topics import sink_topics

AB_REPORT_INTERVAL_S = 60.0


def _gauge(name: str, help_text: str, labels: list[str]) -> Gauge:
    return Gauge(name, help_text, labels, registry=REGISTRY)


CONSUMER_LAG = _gauge(
    "homemixer_consumer_lag",
    "Records behind the end of each partition this worker consumes: end offset minus committed.",
    ["topic", "partition"],
)
# Cluster-wide values (kept in Redis, the same for every worker): only the leader exports them,
# so that a sum() over workers does not multiply them by the number of workers.
AB = {
    name: _gauge(f"homemixer_ab_{name}", help_text, ["bucket"])
    for name, help_text in (
        ("served", "Ranked items served per A/B bucket (cluster-wide; from the leader)."),
        ("engaged", "Positive engagements on ranked items per A/B bucket (cluster-wide; from the leader)."),
        ("rate", "Engagements per served ranked item per A/B bucket (cluster-wide; from the leader)."),
    )
}
CALIBRATION_SLOPE = _gauge(
    "homemixer_calibration_slope",
    "Platt slope a of the scorer's calibration (cluster-wide; from the leader).",
    ["segment", "kind"],
)
CALIBRATION_INTERCEPT = _gauge(
    "homemixer_calibration_intercept",
    "Platt intercept b of the scorer's calibration (cluster-wide; from the leader).",
    ["segment", "kind"],
)
CALIBRATION_LEARNT = _gauge(
    "homemixer_calibration_learnt",
    "Served outcomes the calibration learnt from (cluster-wide; from the leader).",
    ["segment", "kind"],
)
CLUSTER_WIDE = (*AB.values(), CALIBRATION_SLOPE, CALIBRATION_INTERCEPT, CALIBRATION_LEARNT)


@app.page("/healthz")
class Healthz(View):
    async def get(self, request: Request) -> Response:
        # TableManagerT does not declare `recovery`, though every TableManager has one.
        recovery = cast(Any, app.tables).recovery
        ready = recovery.completed.is_set() and not app.rebalancing
        status = 200 if ready else 503
        return self.json({"ready": ready}, status=status)


@app.page("/metrics")
class Metrics(View):
    async def get(self, request: Request) -> Response:
        await update_consumer_lag()
        await update_cluster_wide()
        # In the headers: aiohttp refuses a `content_type` argument that names a charset.
        return self.bytes(render(), headers={"Content-Type": CONTENT_TYPE})


async def update_consumer_lag() -> None:
    lags = await partition_lags(app)
    if lags is None:
        return  # the broker did not answer: the previous values stand
    CONSUMER_LAG.clear()  # partitions revoked since the last scrape go
    for tp, lag in lags.items():
        CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)


async def update_cluster_wide() -> None:
    redis = redis_client()
    state = (await bucket_metrics(redis), await load_calibrator(redis)) if app.is_leader() else None
    # Cleared and set with no await between, so a concurrent scrape never renders them half set.
    for gauge in CLUSTER_WIDE:
        gauge.clear()  # a worker that stopped being the leader stops exporting them
    if state is None:
        return
    buckets, calibration = state
    for bucket, values in buckets.items():
        for name, value in values.items():
            AB[name].labels(bucket).set(value)
    for segment, calibrator in calibration.segments.items():
        for kind, platt in calibrator.params().items():
            CALIBRATION_SLOPE.labels(segment, kind).set(platt.a)
            CALIBRATION_INTERCEPT.labels(segment, kind).set(platt.b)
            CALIBRATION_LEARNT.labels(segment, kind).set(calibrator.learnt(kind))


async def report_ab_metrics() -> None:
    """Per-bucket engagement of ranked timelines to `system_events`, once a minute (leader only)."""
    metrics = await bucket_metrics(redis_client())
    event = {
        "type": "ab_metrics",
        "ts": int(time.time() * 1000),
        "source": "mixer",
        "attributes": {f"{b}.{k}": f"{v:g}" for b, values in metrics.items() for k, v in values.items()},
    }
    await sink_topics["system_events"].send(key=b"mixer", value=encode_json(event))


app.timer(AB_REPORT_INTERVAL_S, on_leader=True, name="ab_metrics")(report_ab_metrics)
