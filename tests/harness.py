"""Factories for integration tests: worker processes, a producer that records offsets, and a
reader of sink topics, all through ordinary clients (confluent-kafka, HTTP)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import orjson
import pytest
import redis as sync_redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from streams.dev.embedded import free_port, terminate
from streams.serving.connection import connect
from streams.serving.keys import RedisKeys
from streams.settings import Settings

WORKER_READY_TIMEOUT_S = 60.0


@dataclass
class Delivered:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def unavailable(reason: str) -> NoReturn:
    """Skip locally; fail in CI (CI=true), where a check that does not run is a broken build."""
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: this test must run in CI)", pytrace=False)
    pytest.skip(reason)


def promtool() -> str:
    """Prometheus's `promtool` (Debian's `prometheus` package), for the metrics and rules checks."""
    found = shutil.which("promtool")
    if found is None:
        unavailable("no promtool: install Debian's package with `apt-get install -y prometheus`")
    return found


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """The sample `name` with exactly these labels in a `/metrics` text, or 0 if it is absent."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


@dataclass
class WorkerProcess:
    name: str
    web_port: int
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def metric(self, name: str, **labels: str) -> float:
        _, body = self.get("/metrics")
        return metric_value(body.decode(), name, **labels)

    def kill(self) -> None:
        """SIGKILL: the crash the exactness tests are about."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        terminate(self.proc, 20)

    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class Cluster:
    bootstrap: str
    redis_url: str
    root: Path
    app_id: str = field(default_factory=lambda: f"homemixer-test-{uuid.uuid4().hex[:8]}")
    workers: list[WorkerProcess] = field(default_factory=list)
    _producer: Producer | None = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for worker in self.workers:
            worker.stop()
        if exc is not None:
            for worker in self.workers:
                tail = worker.log.read_text(errors="replace")[-4000:]
                print(f"--- {worker.name} log tail ---\n{tail}", file=sys.stderr)

    @property
    def keys(self) -> RedisKeys:
        """The Redis keys of this cluster's workers (whose app id is not this process's)."""
        return RedisKeys(self.app_id)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_BROKER": f"kafka://{self.bootstrap}",
            "REDIS_URL": self.redis_url,
            "HOMEMIXER_APP_ID": self.app_id,
            "HOMEMIXER_FAST_REBALANCE": "1",
            "HOMEMIXER_SECRET": "test-secret",
            **extra,
        }

    def start_worker(self, name: str = "w1", wait: bool = True, **extra_env: str) -> WorkerProcess:
        data_dir = self.root / name
        data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log = self.root / f"{name}.log"
        env = self.env(HOMEMIXER_DATA_DIR=str(data_dir), WEB_PORT=str(port), **extra_env)
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "info"],
            env=env,
            stdout=open(log, "ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        worker = WorkerProcess(name, port, data_dir, log, proc)
        self.workers.append(worker)
        if wait:
            self.wait_ready(worker)
        return worker

    def wait_ready(self, worker: WorkerProcess) -> None:
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not worker.alive():
                raise RuntimeError(f"{worker.name} exited: {worker.log.read_text()[-3000:]}")
            try:
                if worker.get("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{worker.name} not ready: {worker.log.read_text()[-3000:]}")

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "linger.ms": 5,
                    "message.max.bytes": 10_000_000,
                }
            )
        return self._producer

    def produce(
        self, messages: Iterable[tuple[str, bytes | str | None, bytes | dict[str, Any] | None]]
    ) -> list[Delivered]:
        """Produce (topic, key, value) messages in order; return where each one landed."""
        delivered: list[Delivered | None] = []

        def on_delivery(index: int) -> Callable[[Any, Any], None]:
            def report(err: Any, msg: Any) -> None:
                if err is not None:
                    raise RuntimeError(f"delivery failed: {err}")
                delivered[index] = Delivered(
                    msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value()
                )

            return report

        for topic, key, value in messages:
            raw_key = key.encode() if isinstance(key, str) else key
            raw_value = orjson.dumps(value) if isinstance(value, dict) else value
            delivered.append(None)
            while True:
                try:
                    self.producer.produce(
                        topic,
                        key=raw_key,
                        value=raw_value,
                        on_delivery=on_delivery(len(delivered) - 1),
                    )
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.producer.poll(0)
        self.producer.flush(30)
        assert all(d is not None for d in delivered), "some messages were not delivered"
        return [d for d in delivered if d is not None]

    def read(
        self, topic: str, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """Read `topic` from the start, decoding JSON values, until `until(values)` holds."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "topic.metadata.refresh.interval.ms": 500,
            }
        )
        # Assigning partitions directly skips a consumer-group join, which costs seconds.
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        values: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                for msg in consumer.consume(10_000, timeout=0.5):
                    if msg.error() is None:
                        values.append(orjson.loads(msg.value()))
                if until(values):
                    return values
        finally:
            consumer.close()
        raise AssertionError(f"timed out reading {topic}: {len(values)} messages so far")


def on_redis_cluster() -> bool:
    """The tests run on a Redis Cluster (`HOMEMIXER_TEST_REDIS=cluster`, which sets the workers'
    HOMEMIXER_REDIS_CLUSTER): tests/conftest.py."""
    return Settings.from_env().redis_cluster


def sync_redis_client(redis_url: str) -> sync_redis.Redis:
    """A blocking client of the tests' Redis, or of their Redis Cluster through any node."""
    if on_redis_cluster():
        client: Any = sync_redis.RedisCluster.from_url(redis_url)
        return client  # type: ignore[no-any-return]
    return sync_redis.Redis.from_url(redis_url)


def flush_redis(redis_url: str) -> None:
    """Every key gone (on a cluster, from every master)."""
    sync_redis_client(redis_url).flushall()


def with_redis(redis_url: str, body: Callable[[Redis], Awaitable[None]]) -> None:
    """Run `body` with an asyncio client of a flushed Redis (a client belongs to one event loop,
    and pytest-asyncio is not a dependency: each test runs its own)."""
    flush_redis(redis_url)

    async def main() -> None:
        client = connect(redis_url, on_redis_cluster(), max_connections=16, wait_s=10.0)
        try:
            await body(client)
        finally:
            await client.aclose()

    asyncio.run(main())
