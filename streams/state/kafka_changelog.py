"""A node's changelog topic: append a store's commit, replay what a store lacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TopicT

# Records fetched per round trip while replaying; a record is one commit, up to a few hundred KB.
REPLAY_BATCH = 500


class ChangelogHeadMissing(RuntimeError):
    """Records a store needs are no longer in its changelog (the broker's retention deleted
    them): replaying the rest would leave the store silently incomplete, so nothing is replayed."""


class KafkaChangelog:
    """Input partition p's stores write to changelog partition p modulo the changelog's count: a
    source topic may have more partitions than our own topics, and records name their store."""

    def __init__(self, topic: TopicT, bootstrap: str, partitions: int) -> None:
        self.topic = topic
        self._bootstrap = bootstrap
        self._partitions = partitions
        # One reader per node, started on first use and reassigned per replay: a consumer start
        # costs a metadata round trip, and standbys replay every few seconds.
        self._reader: AIOKafkaConsumer | None = None
        self._reader_lock = asyncio.Lock()

    async def append(self, partition: int, record: bytes) -> int:
        """Send one record for input `partition` and return its offset once the broker has it."""
        pending = await self.topic.send(value=record, partition=partition % self._partitions)
        metadata = await pending
        offset: int = metadata.offset
        return offset

    async def replay(self, partition: int, after: int) -> AsyncIterator[tuple[int, bytes]]:
        """(offset, record) for every record of `partition` past `after`, up to the current end."""
        tp = TopicPartition(self.topic.get_topic_name(), partition % self._partitions)
        async with self._reader_lock:
            if self._reader is None:
                # "none": a seek past what the broker still has raises instead of jumping to the end.
                self._reader = AIOKafkaConsumer(
                    bootstrap_servers=self._bootstrap, enable_auto_commit=False, auto_offset_reset="none"
                )
                await self._reader.start()
            consumer = self._reader
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            if after + 1 >= end:
                return
            first = (await consumer.beginning_offsets([tp]))[tp]
            if after + 1 < first:
                raise ChangelogHeadMissing(
                    f"{tp.topic}[{tp.partition}]: a store that has applied up to offset {after} needs "
                    f"records from {after + 1}, but the changelog starts at {first} (deleted by the "
                    "topic's retention). Give changelog topics retention.ms=-1 (README, Exactness), "
                    "or reprocess from the source topics."
                )
            consumer.seek(tp, after + 1)
            while await consumer.position(tp) < end:
                fetched = await consumer.getmany(tp, timeout_ms=1000, max_records=REPLAY_BATCH)
                for message in fetched.get(tp, []):
                    if message.value is not None:
                        yield message.offset, message.value
