"""Real servers for the tests: a Kafka-protocol broker, a Redis and `homemixer worker` processes.

The broker is the embedded one (Tansu) unless `HOMEMIXER_TEST_BROKER=kafka` or `--broker=kafka`
chooses Apache Kafka (tests/brokers.py). Tansu starts in milliseconds, so each test gets a fresh
one and every count is exact; Kafka takes seconds, so one broker serves the session and every
topic is deleted before each test that uses it, which leaves it as empty as a fresh one (consumer
groups are per test already: each cluster has its own app id). Redis is started once per session:
one Redis, or with `HOMEMIXER_TEST_REDIS=cluster` a real Redis Cluster of three masters
(tests/redis_cluster.py), which the workers and the tests' own clients then use as one
(HOMEMIXER_REDIS_CLUSTER). `KAFKA_BROKER` / `REDIS_URL` point the tests at existing servers
instead; tests that need an empty broker are then skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.dev.embedded import start_redis
from tests.brokers import BROKER_LACKS, BROKERS, broker_kind, delete_all_topics, start_test_broker
from tests.harness import Cluster, flush_redis
from tests.kafka_broker import KAFKA_VERSION, KafkaBroker, KafkaUnavailable, start_kafka
from tests.redis_cluster import RedisClusterServers, start_redis_cluster

KAFKA_START_SECONDS = pytest.StashKey[float]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--broker",
        choices=BROKERS,
        default=None,
        help="the broker of the integration tests (default: $HOMEMIXER_TEST_BROKER, else tansu)",
    )


def redis_kind() -> str:
    """ "single" (one Redis) or "cluster" (a Redis Cluster): HOMEMIXER_TEST_REDIS."""
    kind = os.environ.get("HOMEMIXER_TEST_REDIS", "single")
    if kind not in ("single", "cluster"):
        raise pytest.UsageError(f"HOMEMIXER_TEST_REDIS={kind!r}: say single or cluster")
    return kind


def pytest_configure(config: pytest.Config) -> None:
    if redis_kind() == "cluster":
        # Read by the workers the tests start and by the tests' own clients (tests/harness.py).
        os.environ["HOMEMIXER_REDIS_CLUSTER"] = "1"
    config.addinivalue_line(
        "markers",
        "broker_feature(name, ...): needs a broker feature (tests/brokers.py BROKER_LACKS); "
        "skipped on a broker that lacks it",
    )


def pytest_report_header(config: pytest.Config) -> str:
    kind = broker_kind(config.getoption("--broker"))
    broker = f"broker: {kind}" + (f" (Apache Kafka {KAFKA_VERSION})" if kind == "kafka" else "")
    return f"{broker}; redis: {redis_kind()}"


def pytest_runtest_setup(item: pytest.Item) -> None:
    kind = broker_kind(item.config.getoption("--broker"))
    for mark in item.iter_markers("broker_feature"):
        for feature in mark.args:
            lack = BROKER_LACKS[kind].get(feature)
            if lack is not None:
                pytest.skip(f"the {kind} broker has no {feature}: {lack}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    seconds = config.stash.get(KAFKA_START_SECONDS, None)
    if seconds is not None:
        terminalreporter.write_line(f"Apache Kafka {KAFKA_VERSION} started in {seconds:.1f} s")


@pytest.fixture(scope="session")
def broker_under_test(pytestconfig: pytest.Config) -> str:
    """The broker the tests run on: "tansu" or "kafka"."""
    return broker_kind(pytestconfig.getoption("--broker"))


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """A Redis Cluster of three masters, for the session."""
    servers = start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    if redis_kind() == "cluster":
        servers: RedisClusterServers = request.getfixturevalue("redis_cluster")
        yield servers.url
        return
    server = start_redis()
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_server(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaBroker]:
    try:
        server = start_kafka(tmp_path_factory.mktemp("kafka"))
    except KafkaUnavailable as exc:
        pytest.skip(f"Apache Kafka cannot run here: {exc}")
    pytestconfig.stash[KAFKA_START_SECONDS] = server.start_seconds
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bootstrap(request: pytest.FixtureRequest, broker_under_test: str, tmp_path: Path) -> Iterator[str]:
    """host:port of an empty broker (or of KAFKA_BROKER, which may hold earlier tests' data)."""
    if os.environ.get("KAFKA_BROKER"):
        yield os.environ["KAFKA_BROKER"].removeprefix("kafka://")
        return
    if broker_under_test == "kafka":
        server: KafkaBroker = request.getfixturevalue("kafka_server")
        delete_all_topics(server.bootstrap)
        yield server.bootstrap
        return
    broker = start_test_broker(broker_under_test, tmp_path)
    try:
        yield f"127.0.0.1:{broker.port}"
    finally:
        broker.stop()


@pytest.fixture
def empty_broker(bootstrap: str) -> str:
    if os.environ.get("KAFKA_BROKER"):
        pytest.skip("needs a broker of its own; KAFKA_BROKER is shared")
    return bootstrap


@pytest.fixture
def cluster(bootstrap: str, redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    flush_redis(redis_url)
    with Cluster(bootstrap, redis_url, tmp_path) as c:
        yield c
