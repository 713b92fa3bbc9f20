"""The Faust application: one per worker process, configured from `Settings`.

Only the App lives here (Faust's layout advice); topics, agents and views are in `topologies/`
and register themselves on import.
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from redis.asyncio import Redis

from streams.runtime.batch_transport import batch_broker_url
from streams.serving.connection import REDIS_UNAVAILABLE, connect
from streams.serving.shared_connection import SharedConnection
from streams.settings import Settings

settings = Settings.from_env()
log = logging.getLogger(__name__)


def faust_config(s: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        # The same brokers through our batch-delivering transport (streams/runtime/batch_transport.py).
        "broker": batch_broker_url(s.broker),
        "datadir": str(s.data_dir / "faust"),
        "topic_partitions": s.partitions,
        "topic_replication_factor": 1,
        "web_port": s.web_port,
        "web_bind": s.web_bind,
        "canonical_url": s.canonical_url,
        "web_in_thread": False,
        # Faust's /router/ and /table/ views answer anyone: the cluster's worker URLs and table
        # data (CONTRACT.md, "Operations"). Requests reach a key's owner through `topic_route`,
        # which reads the assignment, not these views.
        "web_router_enabled": False,
        "web_tables_enabled": False,
        "consumer_auto_offset_reset": "earliest",
        "autodiscover": False,
        # The parser sees multi-megabyte junk on purpose; it must fetch it to dead-letter it.
        "consumer_max_fetch_size": 8 * 1024 * 1024,
        "producer_max_request_size": 8 * 1024 * 1024,
    }
    if s.fast_rebalance:
        config.update(
            broker_rebalance_timeout=3.0,
            broker_session_timeout=6.0,
            broker_heartbeat_interval=1.0,
        )
    return config


app = faust.App(settings.app_id, **faust_config(settings))


# Connections per worker: more than the web server's concurrent reads need on two cores.
REDIS_CONNECTIONS = 64
REDIS_WAIT_S = 10.0


def redis_client() -> Redis:
    """The worker's Redis client (one connection pool, created on first use inside the loop)."""
    global _redis
    if _redis is None:
        _redis = connect(settings.redis_url, settings.redis_cluster, REDIS_CONNECTIONS, REDIS_WAIT_S)
    return _redis


_redis: Redis | None = None


def shared_redis() -> SharedConnection | None:
    """The connection this process's latest reads share (one Redis; None on a cluster)."""
    global _shared
    if _shared is None and not settings.redis_cluster:
        _shared = SharedConnection(settings.redis_url)
    return _shared


_shared: SharedConnection | None = None


def tolerating_redis_outages(upkeep: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """A timer's `upkeep` that logs Redis being unreachable instead of crashing the worker: the
    timer tries again at its next tick, and meanwhile GET /readyz says Redis fails."""

    @functools.wraps(upkeep)
    async def tolerant() -> None:
        try:
            await upkeep()
        except REDIS_UNAVAILABLE as exc:
            log.warning("%s: Redis is unreachable (%s); trying again at the next tick", upkeep.__name__, exc)

    return tolerant


# A ranked read holds thousands of objects at once and frees nearly all of them by reference
# counting when it ends. At the default (700, 10, 10) its pipeline alone ran ~6 young collections
# per read and a full one every ~20 reads, for almost no garbage; at these, almost none. That took
# 2-4 ms off the ranked p99 (bench/RESULTS.md).
GC_THRESHOLDS = (20_000, 20, 20)


async def freeze_startup_objects() -> None:
    # Everything imported and built at start-up lives for the whole run; frozen, the cyclic
    # collector stops re-scanning it, and a full collection during a ranked read (hundreds of
    # candidates allocate enough to trigger one) costs a fraction of the time: ranked p99.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


app.task(freeze_startup_objects)
