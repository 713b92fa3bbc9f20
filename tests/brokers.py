"""Which broker the tests and benches run on, what each one lacks, and how to start one.

`HOMEMIXER_TEST_BROKER` (or pytest's `--broker`, or a bench's `--broker`) chooses between the
embedded broker (`tansu`, the default) and Apache Kafka (`kafka`, see tests/kafka_broker.py).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Protocol

from confluent_kafka.admin import AdminClient

from tests.kafka_broker import start_kafka

BROKERS = ("tansu", "kafka")
BROKER_ENV = "HOMEMIXER_TEST_BROKER"

# What each broker lacks, with the symptom: tests marked `broker_feature(name)` are skipped
# with this text where their broker lacks the feature. tests/integration/test_broker_features.py
# probes the lacks that can be probed quickly, so the table cannot drift from the brokers.
BROKER_LACKS: dict[str, dict[str, str]] = {
    "tansu": {
        "compaction": "a cleanup.policy=compact topic keeps every record",
        "delete_records": "DeleteRecords fails with a transport error",
        # librdkafka's transactional producer does work against it; Faust's client is aiokafka.
        "transactions": "aiokafka's InitProducerId fails (UnknownError), so Faust has no exactly_once",
    },
    "kafka": {},
}

# Topics the broker keeps for itself; every other topic belongs to a test.
INTERNAL_PREFIX = "__"
TOPIC_DELETE_TIMEOUT_S = 30.0


def broker_kind(choice: str | None = None) -> str:
    """`choice` if given, else $HOMEMIXER_TEST_BROKER, else the embedded broker."""
    kind = choice or os.environ.get(BROKER_ENV) or "tansu"
    if kind not in BROKERS:
        raise ValueError(f"{BROKER_ENV}={kind!r}: choose one of {', '.join(BROKERS)}")
    return kind


class RunningBroker(Protocol):
    """What the embedded broker's `ChildServer` and `KafkaBroker` both are."""

    @property
    def port(self) -> int: ...

    @property
    def process(self) -> subprocess.Popen[bytes]: ...

    def stop(self) -> None: ...


def start_test_broker(kind: str, root: Path) -> RunningBroker:
    """A fresh broker of `kind` on 127.0.0.1, logging under `root`."""
    if kind == "kafka":
        return start_kafka(root / "kafka")
    # Imported here: the embedded broker's module is the one part of `streams` this needs.
    from streams.dev.embedded import start_broker

    return start_broker(log=root / "broker.log")


def delete_all_topics(bootstrap: str) -> None:
    """Delete every topic but the broker's own, and return once the metadata names none of them."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=10).topics if not t.startswith(INTERNAL_PREFIX)]
    if not names:
        return
    for future in admin.delete_topics(names, operation_timeout=TOPIC_DELETE_TIMEOUT_S).values():
        future.result()
    deadline = time.monotonic() + TOPIC_DELETE_TIMEOUT_S
    while set(names) & set(admin.list_topics(timeout=10).topics):
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics still listed {TOPIC_DELETE_TIMEOUT_S} s after their deletion")
        time.sleep(0.1)
