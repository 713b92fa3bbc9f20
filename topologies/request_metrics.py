"""`homemixer_http_request_duration_seconds`: every HTTP request's latency, by route, mode and status.

An aiohttp middleware on the worker's web server, so every view is measured, Faust's own and a
404 included, without any view timing itself. The labels stay few whatever clients send: `route`
is the matched route's template (`/timelines/{user_id}`, not the path), `mode` only one of the
timeline modes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from aiohttp import web
from prometheus_client import Histogram

from streams.app import app
from streams.http.rules import MODES
from streams.runtime.metrics import REGISTRY
from topologies.timeline_view import TIMELINE_ROUTE

# The read path's targets (seed 003: 10 ms on a cache hit, 50 ms on a miss) and a ranked read's
# p99 (about 10 ms, bench/RESULTS.md) fall between close bounds; a read waiting for the Redis
# view after a Redis loss gives up at 15 s.
REQUEST_SECONDS_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0,
)  # fmt: skip
# A request that matched no route: one series for all of them, not one per path tried.
UNMATCHED = "unmatched"

REQUEST_SECONDS = Histogram(
    "homemixer_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, timeline mode and status code.",
    ["route", "mode", "status"],
    buckets=REQUEST_SECONDS_BUCKETS,
    registry=REGISTRY,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_labels(route: str | None, query: Mapping[str, str], status: int) -> tuple[str, str, str]:
    """(route, mode, status): `mode` is the timeline mode asked for (the route's default,
    `latest`, when none is), and empty for other routes or a mode the API refuses."""
    mode = query.get("mode") or ("latest" if route == TIMELINE_ROUTE else "")
    return route or UNMATCHED, mode if mode in MODES else "", str(status)


@web.middleware
async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        labels = request_labels(None if resource is None else resource.canonical, request.query, status)
        REQUEST_SECONDS.labels(*labels).observe(time.perf_counter() - started)


# Faust builds the aiohttp application when the first view registers; middlewares must be in
# place before its server starts, which is after every module of `topologies` is imported.
cast(Any, app.web).web_app.middlewares.append(measure)
