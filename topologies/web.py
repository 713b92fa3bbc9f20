"""Operational views: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from faust.web import Request, Response, View
from redis.exceptions import RedisError

from streams.app import app, redis_client, tolerating_redis_outages
from streams.http.health import group_check, readiness, redis_check, stores_check
from streams.ingest.codec import encode_json
from streams.ranked.bandit_store import bucket_metrics
from streams.ranked.served_outcomes import load_calibrator
from streams.runtime.metrics import METRICS
from topologies.topics import sink_topics, stores_behind

AB_REPORT_INTERVAL_S = 60.0
# A readiness probe waits for its answer; Redis answers a PING in well under a millisecond.
REDIS_PING_TIMEOUT_S = 1.0
METRICS.describe("homemixer_ab_served", "gauge", "Ranked items served per A/B bucket.")
METRICS.describe("homemixer_ab_engaged", "gauge", "Positive engagements on ranked items per A/B bucket.")
METRICS.describe("homemixer_ab_rate", "gauge", "Engagements per served ranked item per A/B bucket.")
METRICS.describe("homemixer_calibration_a", "gauge", "Platt slope a of the scorer's calibration.")
METRICS.describe("homemixer_calibration_b", "gauge", "Platt intercept b of the scorer's calibration.")
METRICS.describe("homemixer_calibration_learnt", "gauge", "Served outcomes the calibration learnt from.")


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
        for bucket, values in (await bucket_metrics(redis_client())).items():
            for name, value in values.items():
                METRICS.set(f"homemixer_ab_{name}", value, bucket=bucket)
        for segment, calibrator in (await load_calibrator(redis_client())).segments.items():
            for kind, platt in calibrator.params().items():
                METRICS.set("homemixer_calibration_a", platt.a, segment=segment, kind=kind)
                METRICS.set("homemixer_calibration_b", platt.b, segment=segment, kind=kind)
                METRICS.set(
                    "homemixer_calibration_learnt", calibrator.learnt(kind), segment=segment, kind=kind
                )
        return self.text(METRICS.render(), content_type="text/plain; version=0.0.4")


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
