"""Batch delivery's offset bookkeeping: what a batch's ack lets Faust commit, and what it must not."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import faust
from faust.types import TP

from streams.runtime.batch_transport import (
    BatchConsumer,
    BatchMessage,
    RecordBatch,
    batch_broker_url,
    batch_topic,
    batch_topics,
)

TOPIC = "events"
TP0 = TP(TOPIC, 0)
_apps = itertools.count()


@dataclass(frozen=True)
class Rec:
    offset: int
    timestamp: int = 1_700_000_000_000
    key: bytes | None = b"k"
    value: bytes | None = b"v"


def recs(*offsets: int) -> list[Rec]:
    return [Rec(o) for o in offsets]


def with_consumer(test: Callable[[faust.App, BatchConsumer], Awaitable[None]]) -> None:
    async def run() -> None:
        app = faust.App(f"test-batch-{next(_apps)}", broker=batch_broker_url("kafka://127.0.0.1:1"))
        batch_topic(app, TOPIC)
        app.topics._acking_topics.add(TOPIC)
        consumer = app.consumer
        assert isinstance(consumer, BatchConsumer)
        await test(app, consumer)

    asyncio.run(run())


def deliver(consumer: BatchConsumer, records: list[Rec]) -> BatchMessage:
    """What the drain loop does with a chunk of fetched records."""
    message = consumer._batch_message(TP0, list(records))
    assert message is not None
    consumer._read_offset[TP0] = message.offset
    return message


def test_broker_url_keeps_the_brokers_and_changes_the_transport() -> None:
    assert batch_broker_url("kafka://h1:9092;h2:9093") == "hmkafka://h1:9092;h2:9093"
    assert batch_broker_url("kafka://h1:9092;kafka://h2:9093") == "hmkafka://h1:9092;hmkafka://h2:9093"
    assert batch_broker_url("hmkafka://h:1") == "hmkafka://h:1"


def test_a_batch_topic_hands_the_batch_to_the_stream_undecoded() -> None:
    async def check(app: faust.App, consumer: BatchConsumer) -> None:
        assert batch_topics(app) == {TOPIC: 2000}
        message = deliver(consumer, recs(0, 1, 2))
        topic = batch_topic(app, TOPIC, max_records=10)
        event = await topic.decode(message)
        assert isinstance(event.value, RecordBatch)
        assert [r.offset for r in event.value] == [0, 1, 2] and event.value.tp == TP0
        assert message.offset == 2 and message.first_offset == 0
        assert batch_topics(app) == {TOPIC: 10}

    with_consumer(check)


def test_acked_batches_commit_after_their_last_record() -> None:
    async def check(app: faust.App, consumer: BatchConsumer) -> None:
        first, second = deliver(consumer, recs(0, 1, 2, 3)), deliver(consumer, recs(4, 5, 6, 7))
        assert consumer._new_offset(TP0) is None, "nothing acked yet"
        consumer.ack(first)
        assert consumer._new_offset(TP0) == 4
        consumer._committed_offset[TP0] = 4
        consumer.ack(second)
        assert consumer._new_offset(TP0) == 8

    with_consumer(check)


def test_a_later_batch_acked_first_commits_nothing_past_the_earlier_one() -> None:
    async def check(app: faust.App, consumer: BatchConsumer) -> None:
        first, second = deliver(consumer, recs(0, 1, 2, 3)), deliver(consumer, recs(4, 5, 6, 7))
        consumer.ack(second)
        assert consumer._new_offset(TP0) is None
        consumer.ack(first)
        assert consumer._new_offset(TP0) == 8

    with_consumer(check)


def test_offsets_without_records_are_covered_by_the_next_batch() -> None:
    async def check(app: faust.App, consumer: BatchConsumer) -> None:
        # After a seek Faust's read and committed offsets are the next offset to read (10).
        consumer._read_offset[TP0] = 10
        consumer._committed_offset[TP0] = 10
        first = deliver(consumer, recs(10, 12, 15))
        second = deliver(consumer, recs(19, 20))  # 16..18: compacted away, or transaction markers
        assert second.first_offset == 16
        consumer.ack(first)
        consumer.ack(second)
        assert consumer._new_offset(TP0) == 21

    with_consumer(check)


def test_records_delivered_before_are_dropped() -> None:
    async def check(app: faust.App, consumer: BatchConsumer) -> None:
        deliver(consumer, recs(0, 1, 2))
        assert consumer._batch_message(TP0, list(recs(0, 1))) is None
        again = deliver(consumer, recs(2, 3, 4))
        assert [r.offset for r in again.value] == [2, 3, 4], "Faust redelivers offset == read offset"

    with_consumer(check)


def test_a_seek_forgets_batches_that_will_come_again() -> None:
    async def check(app: faust.App, consumer: BatchConsumer) -> None:
        async def no_client_seek(partition: TP, offset: int) -> None:
            pass

        consumer._seek = no_client_seek  # type: ignore[method-assign]
        deliver(consumer, recs(0, 1, 2, 3))  # abandoned by a rebalance, never acked
        await consumer.seek(TP0, 0)
        assert not consumer._batch_spans.get(TP0)
        # Fetched again in other chunks: the abandoned batch must not hold the commit back.
        for message in [deliver(consumer, recs(0, 1)), deliver(consumer, recs(2, 3, 4, 5))]:
            consumer.ack(message)
        assert consumer._new_offset(TP0) == 6

    with_consumer(check)


def test_held_back_records_go_out_in_chunks_once_the_agent_has_taken_its_queued_batch() -> None:
    async def check(app: faust.App, consumer: BatchConsumer) -> None:
        @dataclass(eq=False)
        class Channel:
            queue: asyncio.Queue[object]

        channel = Channel(asyncio.Queue())
        app.topics._topic_name_index[TOPIC] = {channel}
        tp1 = TP(TOPIC, 1)
        consumer._pool.update({TP0: list(recs(0, 1, 2)), tp1: list(recs(7))})
        sizes = {TOPIC: 2}

        channel.queue.put_nowait("a batch the agent has not taken")
        ready = [(tp.partition, [r.offset for r in chunk]) for tp, chunk in consumer._pool_ready(sizes)]
        # A full batch's worth goes out even so; less waits to join what comes next.
        assert ready == [(0, [0, 1]), (0, [2])]
        assert list(consumer._pool) == [tp1]

        channel.queue.get_nowait()
        ready = [(tp.partition, [r.offset for r in chunk]) for tp, chunk in consumer._pool_ready(sizes)]
        assert ready == [(1, [7])]
        assert not consumer._pool

    with_consumer(check)


def test_held_back_records_are_handed_back_to_the_fetcher_not_dropped() -> None:
    async def check(app: faust.App, consumer: BatchConsumer) -> None:
        seeks: list[tuple[TP, int]] = []

        async def record_seek(partition: TP, offset: int) -> None:
            seeks.append((partition, offset))

        consumer._seek = record_seek  # type: ignore[method-assign]
        consumer.assignment = lambda: {TP0}  # type: ignore[method-assign]
        consumer._pool.update({TP0: list(recs(5, 6)), TP(TOPIC, 1): list(recs(9))})
        # A rebalance: Faust seeks only partitions with a committed offset above 0, so a partition
        # without one would go on from offset 7 and 5 and 6 would never come.
        await consumer._return_pool()
        assert seeks == [(TP0, 5)]  # partition 1 is not ours any more: its new owner reads it
        assert not consumer._pool

    with_consumer(check)


def test_a_seek_forgets_held_back_records_which_are_fetched_again() -> None:
    async def check(app: faust.App, consumer: BatchConsumer) -> None:
        async def no_client_seek(partition: TP, offset: int) -> None:
            pass

        consumer._seek = no_client_seek  # type: ignore[method-assign]
        consumer._pool[TP0] = list(recs(3, 4))
        await consumer.seek(TP0, 3)
        assert TP0 not in consumer._pool

    with_consumer(check)
