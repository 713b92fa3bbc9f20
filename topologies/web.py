"""Operational views: readiness and Prometheus metrics."""

from __future__ import annotations

import time
from typing import Any, cast

from faust.web import Request, Response, View

from streams.app import app, redis_client
from streams.ingest.codec import encode_json
from streams.ranked.bandit_store import bucket_metrics
from streams.ranked.served_outcomes import load_calibrator
from streams.runtime.metrics import METRICS
from topologies.topics import sink_topics

AB_REPORT_INTERVAL_S = 60.0
METRICS.describe("homemixer_ab_served", "gauge", "Ranked items served per A/B bucket.")
METRICS.describe("homemixer_ab_engaged", "gauge", "Positive engagements on ranked items per A/B bucket.")
METRICS.describe("homemixer_ab_rate", "gauge", "Engagements per served ranked item per A/B bucket.")
METRICS.describe("homemixer_calibration_a", "gauge", "Platt slope a of the scorer's calibration.")
METRICS.describe("homemixer_calibration_b", "gauge", "Platt intercept b of the scorer's calibration.")
METRICS.describe("homemixer_calibration_learnt", "gauge", "Served outcomes the calibration learnt from.")


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


app.timer(AB_REPORT_INTERVAL_S, on_leader=True, name="ab_metrics")(report_ab_metrics)
