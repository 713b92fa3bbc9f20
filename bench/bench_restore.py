"""How long a worker with an empty disk takes to restore a store from its changelog.

    python -m bench.bench_restore [--keys 1000000] [--broker tansu|kafka]

Two scenarios, each with the project's own NodeState, KafkaChangelog and RocksDB stores on a
broker the bench starts:
  state     a store of KEYS keys (values of ~60 bytes, about what an entity's decayed counts
            take), written in commits of 10,000 keys, with snapshots as a worker takes them.
  history   the same 10,000 keys after 20,000 and after 2,000,000 updates: with snapshots, a
            restore reads the latest snapshot and what came after it, so its time should not
            grow with the length of the history.
For each: the restore (a fresh NodeState on an empty directory opening the partition, until the
store holds exactly the writer's entries), side by side with a raw confluent-kafka consumer
reading the same changelog records the restore read (the floor for any restore from this topic).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from faust.types import TP

from streams.runtime.topic_admin import CHANGELOG_CONFIG
from streams.state.kafka_changelog import KafkaChangelog
from streams.state.node_state import NodeState
from tests.brokers import broker_kind, start_test_broker

INPUT = "bench-input"
COMMIT_KEYS = 10_000
HISTORY_KEYS = 10_000
# A snapshot once the records since the last one outweigh it (and at least this).
SNAPSHOT_MIN_BYTES = 4 * 1024 * 1024
VALUE = bytes(range(60))


class ProducerTopic:
    """What KafkaChangelog needs of a Faust topic (`send`, `get_topic_name`), on aiokafka's
    producer: Faust's `Topic.send` is the same producer behind a worker's app."""

    def __init__(self, producer: AIOKafkaProducer, name: str) -> None:
        self._producer = producer
        self._name = name

    def get_topic_name(self) -> str:
        return self._name

    async def send(self, value: bytes, partition: int) -> Any:
        return await self._producer.send(self._name, value, partition=partition)


def create_changelog(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config=dict(CHANGELOG_CONFIG))])[name].result()


async def write_history(changelog: KafkaChangelog, root: Path, keys: int, updates: int) -> NodeState:
    """A writer's store: `updates` key writes over `keys` keys, in commits of COMMIT_KEYS."""
    state = NodeState(
        "bench",
        root,
        86_400_000,
        changelog_of=lambda _topic: changelog,
        snapshot_min_bytes=SNAPSHOT_MIN_BYTES,
    )
    tp = TP(INPUT, 0)
    await state.open([tp])
    rng = random.Random(1)
    store = state.store(tp)
    for offset, start in enumerate(range(0, updates, COMMIT_KEYS)):
        for i in range(start, min(start + COMMIT_KEYS, updates)):
            key = i if i < keys else rng.randrange(keys)
            store.put(b"k:%010d" % key, VALUE + str(i).encode())
        await state.commit({tp: offset})
    return state


def raw_read(bootstrap: str, topic: str, start: int, end: int) -> tuple[float, int]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-raw", "enable.auto.commit": False}
    )
    consumer.list_topics(topic, timeout=10)  # connected before the clock starts
    began = time.perf_counter()
    consumer.assign([TopicPartition(topic, 0, start)])
    read_bytes = 0
    position = start
    while position < end:
        message = consumer.poll(timeout=1.0)  # one at a time: `consume` waits to fill its batch
        if message is not None and message.error() is None:
            read_bytes += len(message.value())
            position = message.offset() + 1
    seconds = time.perf_counter() - began
    consumer.close()
    return seconds, read_bytes


async def scenario(bootstrap: str, root: Path, name: str, keys: int, updates: int) -> dict[str, Any]:
    topic = f"bench-{name}-changelog"
    create_changelog(bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=8 * 1024 * 1024, linger_ms=5)
    await producer.start()
    try:
        changelog = KafkaChangelog(ProducerTopic(producer, topic), bootstrap, 1, [INPUT])  # type: ignore[arg-type]
        writing = time.perf_counter()
        writer = await write_history(changelog, root / f"{name}-writer", keys, updates)
        written_s = time.perf_counter() - writing
        tp = TP(INPUT, 0)
        expected = dict(writer.store(tp).items())
        start = await changelog.snapshot_start(0, f"{INPUT}-0")
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-probe"})
        head, end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.close()

        reader = NodeState(
            "bench", root / f"{name}-reader", 86_400_000, changelog_of=lambda _topic: changelog
        )
        began = time.perf_counter()
        await reader.open([tp])
        restore_s = time.perf_counter() - began
        restored = dict(reader.store(tp).items())
        if restored != expected:
            raise RuntimeError(f"{name}: restored {len(restored)} entries, the writer has {len(expected)}")
        raw_s, raw_bytes = raw_read(bootstrap, topic, start if start is not None else head, end)
        writer.close()
        reader.close()
        await changelog.close()
    finally:
        await producer.stop()
    return {
        "keys": keys,
        "updates": updates,
        "write_s": written_s,
        "changelog_records": end - head,
        "log_start": head,
        "snapshot_start": start,
        "restore_read_mb": raw_bytes / 1e6,
        "restore_s": restore_s,
        "raw_s": raw_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--broker", choices=("tansu", "kafka"), default=None)
    args = parser.parse_args()
    kind = broker_kind(args.broker)
    runs = [
        ("state", args.keys, args.keys),
        ("history-short", HISTORY_KEYS, 20_000),
        ("history-long", HISTORY_KEYS, 2_000_000),
    ]
    print(f"bench_restore: broker {kind}")
    with tempfile.TemporaryDirectory(prefix="bench-restore-") as tmp:
        root = Path(tmp)
        broker = start_test_broker(kind, root)
        bootstrap = f"127.0.0.1:{broker.port}"
        try:
            for name, keys, updates in runs:
                r = asyncio.run(scenario(bootstrap, root, name, keys, updates))
                print(
                    f"{name:14} {r['keys']:>9,} keys after {r['updates']:>9,} updates: "
                    f"restore {r['restore_s']:6.2f} s ({r['restore_read_mb']:.0f} MB from offset "
                    f"{r['snapshot_start']} of {r['changelog_records']:,} records kept, log start "
                    f"{r['log_start']}); raw read of the same records {r['raw_s']:.2f} s "
                    f"(restore/raw {r['restore_s'] / r['raw_s']:.1f}x); written in {r['write_s']:.1f} s"
                )
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
