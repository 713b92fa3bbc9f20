"""Operational views: liveness, readiness, Prometheus metrics and the live dashboard."""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from typing import Any, cast

from faust.web import Request, Response, View
from prometheus_client import Gauge
from redis.exceptions import RedisError

from streams.app import app, redis_client, tolerating_redis_outages
from streams.http.health import group_check, readiness, redis_check, stores_check
from streams.http.rules import page_security_headers
from streams.ingest.codec import encode_json
from streams.ranked.bandit_store import bucket_metrics
from streams.ranked.served_outcomes import load_calibrator
from streams.runtime.consumer_lag import partition_lags
from streams.runtime.dashboard import PANEL_SAMPLES, History, take_snapshot
from streams.runtime.metrics import CONTENT_TYPE, REGISTRY, render
from topologies.topics import sink_topics, stores_behind

AB_REPORT_INTERVAL_S = 60.0
# A readiness probe waits for its answer; Redis answers a PING in well under a millisecond.
REDIS_PING_TIMEOUT_S = 1.0
# The dashboard's resolution and span: a point every 2 s is live enough to watch a test or a load
# run, and ten minutes of them (300 points a line) is one small answer to draw. A sample reads the
# registry and asks the broker for end offsets, about what a Prometheus scrape costs.
DASHBOARD_SAMPLE_S = 2.0
DASHBOARD_KEEP = 300
DASHBOARD_PAGE = (resources.files("streams.http") / "static" / "dashboard.html").read_text("utf-8")
DASHBOARD_HEADERS = page_security_headers(DASHBOARD_PAGE)


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


@app.page("/livez")
class Livez(View):
    """200 while the process serves HTTP: a worker that fails this is to be restarted."""

    async def get(self, request: Request) -> Response:
        return self.json({"live": True})


async def redis_error() -> str | None:
    """Why Redis does not answer a PING, or None when it does."""
    try:
        await asyncio.wait_for(redis_client().ping(), REDIS_PING_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {REDIS_PING_TIMEOUT_S:g} s"
    except RedisError as exc:
        return str(exc) or type(exc).__name__
    return None


@app.page("/readyz")
class Readyz(View):
    """200 once the worker has joined the group, caught its stores up and reaches Redis; else 503
    naming the checks that fail (streams/http/health.py)."""

    async def get(self, request: Request) -> Response:
        # TableManagerT does not declare `recovery`, though every TableManager has one. Faust
        # completes it once the worker's first assignment is in place (and only then starts
        # this web server, so the consumer is running here).
        joined = cast(Any, app.tables).recovery.completed.is_set()
        status, body = readiness(
            {
                "group": group_check(joined, app.rebalancing, len(app.consumer.assignment())),
                "stores": stores_check(stores_behind()),
                "redis": redis_check(await redis_error()),
            }
        )
        return self.json(body, status=status)


@app.page("/healthz")
class Healthz(Readyz):
    """The first name of /readyz, kept for what already probes it."""


@app.page("/metrics")
class Metrics(View):
    async def get(self, request: Request) -> Response:
        await update_consumer_lag()
        await update_cluster_wide()
        # In the headers: aiohttp refuses a `content_type` argument that names a charset.
        return self.bytes(render(), headers={"Content-Type": CONTENT_TYPE})


dashboard_history = History(DASHBOARD_KEEP, DASHBOARD_SAMPLE_S)


async def sample_dashboard() -> None:
    await update_consumer_lag()
    dashboard_history.add(take_snapshot(REGISTRY.collect(), time.time(), PANEL_SAMPLES))


app.timer(DASHBOARD_SAMPLE_S, name="dashboard_sample")(sample_dashboard)


@app.page("/dashboard")
class Dashboard(View):
    """The panels of docker/grafana/homemixer.json, live, for this worker (streams/runtime/dashboard.py).

    Open like /metrics, which it shows the same figures of; the page reads /dashboard/series and
    /readyz itself."""

    async def get(self, request: Request) -> Response:
        return self.html(DASHBOARD_PAGE, headers=DASHBOARD_HEADERS)


@app.page("/dashboard/series")
class DashboardSeries(View):
    async def get(self, request: Request) -> Response:
        return self.json(dashboard_history.to_json(time.time()), headers={"Cache-Control": "no-store"})


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


app.timer(AB_REPORT_INTERVAL_S, on_leader=True, name="ab_metrics")(
    tolerating_redis_outages(report_ab_metrics)
)
