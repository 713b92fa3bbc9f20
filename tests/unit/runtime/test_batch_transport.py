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
    _round_robin,
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


def test_chunks_of_at_most_max_records_taken_in_turn_across_partitions() -> None:
    async def check(app: faust.App, consumer: BatchConsumer) -> None:
        tp1 = TP(TOPIC, 1)
        items = _round_robin(
            [
                consumer._items(TP0, list(recs(0, 1, 2, 3, 4)), 2),
                consumer._items(tp1, list(recs(7)), 2),
            ]
        )
        shape = [(tp.partition, [r.offset for r in chunk]) for tp, chunk in items]  # type: ignore[union-attr]
        assert shape == [(0, [0, 1]), (1, [7]), (0, [2, 3]), (0, [4])]

    with_consumer(check)
