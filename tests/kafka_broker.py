"""Apache Kafka for the tests and benches: one KRaft node (broker and controller) on loopback.

The broker's jars come from Maven Central through `tests/kafka/pom.xml` and are cached under
`~/.cache/homemixer/kafka-<version>/` (or `$HOMEMIXER_KAFKA_CACHE/kafka-<version>/`). Each
`start_kafka` formats a fresh log directory, so a broker starts with no topics and no groups.

This module depends on no part of the `streams` package, so that moving the package's modules
does not move the harness.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

LOOPBACK = "127.0.0.1"
POM = Path(__file__).parent / "kafka" / "pom.xml"


def _pom_version() -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if match is None:
        raise RuntimeError(f"{POM} names no kafka.version")
    return match.group(1)


# The pom is the one place the version is written; the cache directory and the compose check read it.
KAFKA_VERSION = _pom_version()
# A cold start on a loaded 2-core machine takes 2-5 s (the JVM, then the controller's election).
START_TIMEOUT_S = 60.0
# A controlled shutdown of a node with a few hundred partitions; past this, SIGKILL.
STOP_TIMEOUT_S = 30.0
# Enough for the broker's own caches; the machine has 2 cores, not much work for a bigger heap.
JVM_HEAP = "-Xmx512m"

# Settings that differ from Kafka's defaults, and why:
SERVER_SETTINGS = {
    # One node: every internal topic has one replica, and a write needs only that one.
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    # Fifty partitions of __consumer_offsets would cost a second of startup for nothing here.
    "offsets.topic.num.partitions": "4",
    "transaction.state.log.num.partitions": "4",
    # Every test's worker joins a new group; the default 3 s delay would be paid per join.
    "group.initial.rebalance.delay.ms": "0",
    # As the embedded broker does, and as docker/compose.yaml does with HOMEMIXER_PARTITIONS:
    # a topic auto-created by a producer gets the workers' partition count (4 by default).
    "auto.create.topics.enable": "true",
    "num.partitions": "4",
    # Oversized events must reach the parser to be dead-lettered (as in docker/compose.yaml).
    "message.max.bytes": "8388608",
    "replica.fetch.max.bytes": "8388608",
    # Tests delete every topic between tests and wait for it; the default waits up to a minute.
    "file.delete.delay.ms": "1000",
    # The log cleaner looks for compactable segments every half second, not every 15 s.
    "log.cleaner.backoff.ms": "500",
}


class KafkaUnavailable(RuntimeError):
    """The broker cannot run here: java is missing, or its jars are not cached and mvn is missing
    or cannot fetch them. A broker that has what it needs and fails to start raises a plain
    RuntimeError instead: tests are skipped for the first and fail for the second."""


@dataclass
class KafkaBroker:
    port: int
    process: subprocess.Popen[bytes]
    root: Path
    start_seconds: float

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def stop(self) -> None:
        _terminate(self.process, STOP_TIMEOUT_S)
        shutil.rmtree(self.root / "logs", ignore_errors=True)


def cache_dir() -> Path:
    base = os.environ.get("HOMEMIXER_KAFKA_CACHE") or str(Path.home() / ".cache" / "homemixer")
    return Path(base) / f"kafka-{KAFKA_VERSION}"


def kafka_jars() -> Path:
    """The directory of the broker's jars, downloaded by Maven on first use."""
    target = cache_dir()
    # Written last, so a download cut short is done again rather than used.
    complete = target / ".complete"
    if complete.exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable(f"mvn is not on PATH and {target} holds no Kafka {KAFKA_VERSION} jars")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise KafkaUnavailable(
            f"mvn could not resolve Kafka {KAFKA_VERSION}:\n{result.stdout}{result.stderr}"
        )
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    complete.touch()
    return target


def start_kafka(root: Path | None = None) -> KafkaBroker:
    """Format a fresh log directory under `root` (a new temporary directory by default), start the
    broker, and return once it answers a metadata request. Its output goes to `root/kafka.log`."""
    java = shutil.which("java")
    if java is None:
        raise KafkaUnavailable("java is not on PATH (the tests need a JRE 17 for Apache Kafka)")
    jars = kafka_jars()
    root = root or Path(tempfile.mkdtemp(prefix="homemixer-kafka-"))
    root.mkdir(parents=True, exist_ok=True)
    port, controller_port = _free_port(), _free_port()
    properties = root / "server.properties"
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{LOOPBACK}:{controller_port}",
        "listeners": f"PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(root / "logs"),
        **SERVER_SETTINGS,
    }
    properties.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    log4j = root / "log4j.properties"
    log4j.write_text(
        "log4j.rootLogger=WARN, stdout\n"
        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
    )
    java_cmd = [java, JVM_HEAP, f"-Dlog4j.configuration=file:{log4j}", "-cp", f"{jars}/*"]
    log = root / "kafka.log"
    started = time.monotonic()
    storage_format = subprocess.run(
        [*java_cmd, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(properties)],
        capture_output=True,
        text=True,
    )
    if storage_format.returncode != 0:
        raise RuntimeError(f"kafka-storage format failed:\n{storage_format.stdout}{storage_format.stderr}")
    with open(log, "ab") as out:
        # A session of its own, so a Ctrl-C at the terminal reaches pytest, which stops the broker.
        process = subprocess.Popen(
            [*java_cmd, "kafka.Kafka", str(properties)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    broker = KafkaBroker(port, process, root, 0.0)
    try:
        _wait_until_serving(broker, log)
    except BaseException:
        broker.stop()
        raise
    broker.start_seconds = time.monotonic() - started
    return broker


def _wait_until_serving(broker: KafkaBroker, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    # The port first: librdkafka logs every refused connection, and the JVM takes a second or two.
    while True:
        if broker.process.poll() is not None:
            raise RuntimeError(f"Kafka exited with code {broker.process.returncode}:\n{_tail(log)}")
        try:
            with socket.create_connection((LOOPBACK, broker.port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Kafka did not listen within {START_TIMEOUT_S} s:\n{_tail(log)}"
                ) from None
            time.sleep(0.1)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    while True:
        try:
            # The listener opens before the broker has caught up with the controller; a metadata
            # answer naming this broker means it serves requests.
            if admin.list_topics(timeout=2).brokers:
                return
        except Exception:
            pass
        if broker.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"Kafka did not answer a metadata request:\n{_tail(log)}")
        time.sleep(0.1)


def _cluster_id() -> str:
    # What `kafka-storage.sh random-uuid` prints: 16 random bytes, base64url without padding.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def _terminate(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""
