"""Real servers for the tests: a Kafka-protocol broker, a Redis and `homemixer worker` processes.

A broker is started per test (Tansu starts in milliseconds, and a fresh one makes every count
exact); Redis once per session. `KAFKA_BROKER` / `REDIS_URL` point the tests at existing servers
instead; tests that need an empty broker are then skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from streams.dev.embedded import start_broker, start_redis
from tests.harness import Cluster


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = start_redis()
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


@pytest.fixture
def bootstrap() -> Iterator[str]:
    """host:port of an empty broker (or of KAFKA_BROKER, which may hold earlier tests' data)."""
    if os.environ.get("KAFKA_BROKER"):
        yield os.environ["KAFKA_BROKER"].removeprefix("kafka://")
        return
    server = start_broker()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        server.stop()


@pytest.fixture
def empty_broker(bootstrap: str) -> str:
    if os.environ.get("KAFKA_BROKER"):
        pytest.skip("needs a broker of its own; KAFKA_BROKER is shared")
    return bootstrap


@pytest.fixture
def cluster(bootstrap: str, redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    redis.Redis.from_url(redis_url).flushall()
    with Cluster(bootstrap, redis_url, tmp_path) as c:
        yield c
