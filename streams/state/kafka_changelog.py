"""A changelog topic: append a store's commit, replay what a store lacks, and keep the index of
each store's latest snapshot (and, where the broker can, drop the records before it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    CoordinatorLoadInProgressError,
    GroupCoordinatorNotAvailableError,
    NotCoordinatorError,
)
from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as ConfluentTopicPartition
from confluent_kafka.admin import AdminClient
from faust.types import TopicT

log = logging.getLogger(__name__)

# Records fetched per round trip while replaying; a record is one commit, up to a few hundred KB.
REPLAY_BATCH = 500
# Past the end the broker reported, how long a replay waits for more before it stops: the end
# offsets a broker reports may be low (Tansu's are after multi-record batches), so a replay ends
# when a fetch past the reported end comes back empty, not when it reaches that end.
TAIL_WAIT_MS = 50
ADMIN_TIMEOUT_S = 15.0
# Looking up a snapshot index while the broker's group coordinator is not ready yet.
INDEX_ATTEMPTS = 10
INDEX_RETRY_S = 0.5


class StoreUnrecoverable(RuntimeError):
    """A store cannot be brought up to date from its changelog: a worker must stop rather than
    run on a store that is silently incomplete."""


class ChangelogHeadMissing(StoreUnrecoverable):
    """Records a store needs are no longer in its changelog (the broker's retention deleted
    them) and no snapshot covers them: replaying the rest would leave the store silently
    incomplete, so nothing is replayed."""


class KafkaChangelog:
    """Input partition p's stores write to changelog partition p modulo the changelog's count: a
    source topic may have more partitions than our own topics, and records name their store.

    Where each store's latest complete snapshot starts is kept as the committed offset of the
    store's changelog partition in a consumer group of its own (`<topic>.snapshot.<store>`): the
    broker keeps it, it survives every worker, and reading it is one round trip."""

    def __init__(self, topic: TopicT, bootstrap: str, partitions: int, inputs: Sequence[str] = ()) -> None:
        self.topic = topic
        self._bootstrap = bootstrap
        self._partitions = partitions
        self._inputs = tuple(inputs)
        # One reader per node, started on first use and reassigned per replay: a consumer start
        # costs a metadata round trip, and standbys replay every few seconds.
        self._reader: AIOKafkaConsumer | None = None
        self._reader_lock = asyncio.Lock()
        self._trimmable: bool | None = None
        self._admin: AdminClient | None = None
        self._index_reader: AIOKafkaAdminClient | None = None
        self._index_lock = asyncio.Lock()

    def _tp(self, partition: int) -> tuple[str, int]:
        return self.topic.get_topic_name(), partition % self._partitions

    async def append(self, partition: int, record: bytes) -> int:
        """Send one record for input `partition` and return its offset once the broker has it."""
        (offset,) = await self.append_many(partition, [record])
        return offset

    async def append_many(self, partition: int, records: Iterable[bytes]) -> list[int]:
        """Send records in order, all before waiting for any, and return their offsets."""
        _, changelog_partition = self._tp(partition)
        pending = [await self.topic.send(value=record, partition=changelog_partition) for record in records]
        return [(await future).offset for future in pending]

    async def bounds(self, partition: int) -> tuple[int, int]:
        """(first offset, reported end offset) of `partition`'s changelog partition."""
        name, changelog_partition = self._tp(partition)
        tp = TopicPartition(name, changelog_partition)
        async with self._reader_lock:
            consumer = await self._started_reader()
            consumer.assign([tp])
            first = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
        return first, end

    async def _started_reader(self) -> AIOKafkaConsumer:
        if self._reader is None:
            # "none": a seek past what the broker still has raises instead of jumping to the end.
            self._reader = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap, enable_auto_commit=False, auto_offset_reset="none"
            )
            await self._reader.start()
        return self._reader

    async def replay(self, partition: int, after: int) -> AsyncIterator[tuple[int, bytes]]:
        """(offset, record) for every record of `partition` past `after`, up to the end."""
        name, changelog_partition = self._tp(partition)
        tp = TopicPartition(name, changelog_partition)
        async with self._reader_lock:
            consumer = await self._started_reader()
            consumer.assign([tp])
            first = (await consumer.beginning_offsets([tp]))[tp]
            if after + 1 < first:
                raise ChangelogHeadMissing(
                    f"{tp.topic}[{tp.partition}]: a store that has applied up to offset {after} needs "
                    f"records from {after + 1}, but the changelog starts at {first} (deleted by the "
                    "topic's retention) and no snapshot covers the gap. Give changelog topics "
                    "retention.ms=-1 (README, Exactness), or reprocess from the source topics "
                    "(homemixer reset)."
                )
            end = (await consumer.end_offsets([tp]))[tp]
            if end == 0:
                return  # never written to (a low end is never 0 for a partition holding records)
            consumer.seek(tp, after + 1)
            while True:
                at_end = await consumer.position(tp) >= end
                fetched = await consumer.getmany(
                    tp, timeout_ms=TAIL_WAIT_MS if at_end else 1000, max_records=REPLAY_BATCH
                )
                messages = fetched.get(tp, [])
                if not messages and at_end:
                    return
                for message in messages:
                    if message.value is not None:
                        yield message.offset, message.value

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.stop()
            self._reader = None
        if self._index_reader is not None:
            await self._index_reader.close()
            self._index_reader = None

    def snapshot_index_group(self, store: str) -> str:
        return f"{self.topic.get_topic_name()}.snapshot.{store}"

    def _admin_client(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self._bootstrap})
        return self._admin

    async def snapshot_start(self, partition: int, store: str) -> int | None:
        """Where `store`'s latest complete snapshot starts in its changelog partition, if it has one."""
        name, changelog_partition = self._tp(partition)
        tp = TopicPartition(name, changelog_partition)
        async with self._index_lock:  # not the replay's lock: a lookup must not wait for a replay
            if self._index_reader is None:
                # aiokafka's admin client, not librdkafka's: librdkafka 2.12's ListConsumerGroupOffsets
                # crashed the process (SIGSEGV in rd_kafka_cgrp_op) on Apache Kafka here.
                self._index_reader = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
                await self._index_reader.start()
        index = self._index_reader
        for attempt in range(INDEX_ATTEMPTS):
            try:
                offsets = await index.list_consumer_group_offsets(
                    self.snapshot_index_group(store), partitions=[tp]
                )
                break
            except (
                GroupCoordinatorNotAvailableError,
                CoordinatorLoadInProgressError,
                NotCoordinatorError,
            ):
                # A broker whose offsets topic does not exist yet answers so until it has
                # created it: retriable, as every Kafka client treats it.
                if attempt == INDEX_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(INDEX_RETRY_S)
        committed = offsets.get(tp)
        return committed.offset if committed is not None and committed.offset >= 0 else None

    async def record_snapshot(self, partition: int, store: str, start: int) -> None:
        """Point `store`'s snapshot index at the snapshot whose first part is at `start`."""
        name, changelog_partition = self._tp(partition)

        def commit() -> None:
            # A client of the index group's own, for one commit: snapshots are rare.
            consumer = Consumer(
                {"bootstrap.servers": self._bootstrap, "group.id": self.snapshot_index_group(store)}
            )
            try:
                consumer.commit(
                    offsets=[ConfluentTopicPartition(name, changelog_partition, start)], asynchronous=False
                )
            finally:
                consumer.close()

        await asyncio.to_thread(commit)

    async def trim(self, partition: int, before: int) -> None:
        """Delete the records before `before` in `partition`'s changelog partition, when that
        partition holds one store's records only and the broker implements DeleteRecords."""
        name, changelog_partition = self._tp(partition)

        def delete() -> None:
            admin = self._admin_client()
            if self._trimmable is None:
                topics = admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
                # An input with more partitions than the changelog shares changelog partitions
                # between stores, and one store's snapshot does not cover another's records.
                self._trimmable = all(
                    len(topics[t].partitions) <= self._partitions for t in self._inputs if t in topics
                )
                if not self._trimmable:
                    log.warning(
                        "%s: an input has more partitions than the changelog (%d); it is not trimmed",
                        name,
                        self._partitions,
                    )
            if not self._trimmable:
                return
            tp = ConfluentTopicPartition(name, changelog_partition, before)
            try:
                future = admin.delete_records([tp], request_timeout=ADMIN_TIMEOUT_S)[tp]
                future.result(timeout=ADMIN_TIMEOUT_S)
            except KafkaException as exc:
                self._trimmable = False
                log.info(
                    "%s: the broker does not delete records (%s); the changelog is not trimmed, "
                    "and restores still start at the latest snapshot",
                    name,
                    exc,
                )

        await asyncio.to_thread(delete)
