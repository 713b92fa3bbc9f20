"""Operational views: readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any, cast

from faust.web import Request, Response, View

from streams.app import app
from streams.metrics import METRICS


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
        return self.text(METRICS.render(), content_type="text/plain; version=0.0.4")
