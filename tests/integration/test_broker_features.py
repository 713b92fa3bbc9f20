"""The broker features some code paths need, probed on the broker the tests run on.

`BROKER_LACKS` in tests/brokers.py decides which `broker_feature` tests are skipped where; the
probe test keeps that table honest on both brokers, and the others show each feature working
where the table says it is there."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from tests.brokers import BROKER_LACKS
from tests.harness import Cluster

# Time for the log cleaner to roll, pick up and compact a segment (the test broker looks every
# half second; the segment rolls after 100 ms).
COMPACTION_TIMEOUT_S = 60.0
TRANSACTION_TIMEOUT_S = 30.0


def create_topic(admin: AdminClient, partitions: int = 1, config: dict[str, str] | None = None) -> str:
    name = f"probe-{uuid.uuid4().hex[:8]}"
    topic = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
    admin.create_topics([topic])[name].result(timeout=30)
    return name


def low_watermark(admin: AdminClient, tp: TopicPartition) -> int:
    offsets = admin.list_offsets({tp: OffsetSpec.earliest()})[tp].result(timeout=10)
    offset: int = offsets.offset
    return offset


def delete_records_works(admin: AdminClient, cluster: Cluster) -> bool:
    topic = create_topic(admin)
    cluster.produce([(topic, None, {"n": n}) for n in range(10)])
    tp = TopicPartition(topic, 0, 6)
    try:
        admin.delete_records([tp], request_timeout=10)[tp].result(timeout=15)
    except KafkaException:
        return False
    return low_watermark(admin, TopicPartition(topic, 0)) == 6


def transactions_work(bootstrap: str) -> bool:
    """Whether aiokafka, the workers' client, can commit a transaction."""

    async def commit_one() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"probe-{uuid.uuid4().hex}")
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send_and_wait(f"probe-{uuid.uuid4().hex[:8]}", b"committed")
        finally:
            await producer.stop()

    try:
        asyncio.run(asyncio.wait_for(commit_one(), TRANSACTION_TIMEOUT_S))
    except KafkaError:
        return False
    return True


def test_the_broker_lacks_exactly_what_the_table_says(
    broker_under_test: str, empty_broker: str, cluster: Cluster
) -> None:
    admin = AdminClient({"bootstrap.servers": empty_broker})
    present = {
        "delete_records": delete_records_works(admin, cluster),
        "transactions": transactions_work(empty_broker),
    }
    lacking = {feature for feature, there in present.items() if not there}
    assert lacking == set(BROKER_LACKS[broker_under_test]) & set(present)


@pytest.mark.broker_feature("delete_records")
def test_delete_records_drops_the_records_before_the_offset(empty_broker: str, cluster: Cluster) -> None:
    admin = AdminClient({"bootstrap.servers": empty_broker})
    assert delete_records_works(admin, cluster)


@pytest.mark.broker_feature("compaction")
def test_compaction_keeps_the_latest_record_of_each_key(empty_broker: str, cluster: Cluster) -> None:
    admin = AdminClient({"bootstrap.servers": empty_broker})
    topic = create_topic(
        admin,
        config={
            "cleanup.policy": "compact",
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.01",
            "min.compaction.lag.ms": "0",
        },
    )
    for round_ in range(5):
        cluster.produce([(topic, f"k{k}", {"k": k, "round": round_}) for k in range(20)])
        time.sleep(0.2)
    latest = {f"k{k}": 4 for k in range(20)}
    deadline = time.monotonic() + COMPACTION_TIMEOUT_S
    while True:
        # Each round rolls the active segment (older than segment.ms), so the earlier ones can go.
        cluster.produce([(topic, "roll", {"k": -1, "round": 0})])
        values = cluster.read(topic, until=lambda vs: len(vs) > 0 and vs[-1]["k"] == -1)
        kept = [v for v in values if v["k"] >= 0]
        if len(kept) <= len(latest):
            break
        assert time.monotonic() < deadline, f"{len(kept)} records of 20 keys kept after compaction"
        time.sleep(1.0)
    assert {f"k{v['k']}": v["round"] for v in kept} == latest


class ChangelogName:
    """What KafkaChangelog.replay reads of its Faust topic: the name (records come from confluent-kafka)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def get_topic_name(self) -> str:
        return self.name


@pytest.mark.broker_feature("delete_records")
def test_a_changelog_whose_head_is_gone_refuses_to_replay_an_incomplete_store(
    empty_broker: str, cluster: Cluster
) -> None:
    from streams.state.kafka_changelog import ChangelogHeadMissing, KafkaChangelog

    admin = AdminClient({"bootstrap.servers": empty_broker})
    topic = create_topic(admin)
    cluster.produce((topic, None, f"commit {i}".encode()) for i in range(10))
    admin.delete_records([TopicPartition(topic, 0, 4)], request_timeout=10)[
        TopicPartition(topic, 0, 4)
    ].result(timeout=15)
    changelog = KafkaChangelog(ChangelogName(topic), empty_broker, 1)  # type: ignore[arg-type]

    async def replays() -> tuple[str, list[int]]:
        refused = ""
        try:
            [offset async for offset, _ in changelog.replay(0, -1)]  # an empty store needs 0 on
        except ChangelogHeadMissing as missing:
            refused = str(missing)
        return refused, [offset async for offset, _ in changelog.replay(0, 5)]

    refused, rest = asyncio.run(replays())
    assert "starts at 4" in refused and "retention.ms=-1" in refused
    assert rest == [6, 7, 8, 9], "a store past the deleted head replays the rest"
