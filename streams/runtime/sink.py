"""Writing a batch's outputs (sink topics and the internal routes): every output is sent, then
waited for, before the batch's state commits, so that a crash can repeat an output but never lose
one.

Outputs go through a librdkafka producer rather than Faust's: Faust's send path builds a request
and a log record per message and capped a worker near 2,000 routed events/s, against ~48,000 with
this (bench/RESULTS.md, "Throughput"). Keys go to partitions by murmur2, as Faust's (aiokafka's)
producer and Java clients place them, so every route stays copartitioned with what the rest of
the worker expects; one request in flight per connection keeps each partition in send order,
which the source-position check of downstream nodes relies on.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from faust.types import TopicT
from prometheus_client import Histogram

from streams.app import settings
from streams.ingest.codec import encode_json
from streams.runtime.metrics import EVENT_DELAY_BUCKETS, REGISTRY

# Wait before producing again when librdkafka's local queue is full.
QUEUE_FULL_WAIT_S = 0.001
# How long the delivery thread blocks in one poll; deliveries wake it at once.
DELIVERY_POLL_S = 0.1
PRODUCER_CONFIG = {
    "linger.ms": 2,
    "partitioner": "murmur2_random",
    "max.in.flight.requests.per.connection": 1,
    "message.max.bytes": 8 * 1024 * 1024,
}
FEATURE_DELAY = Histogram(
    "homemixer_feature_delay_seconds",
    "Wall-clock time from an entity's newest event time to its real_time_features message.",
    buckets=EVENT_DELAY_BUCKETS,
    registry=REGISTRY,
)

_producer: Producer | None = None


def producer(bootstrap: str) -> Producer:
    """The process's output producer, created on first use, with a thread that serves its
    delivery reports: a batch waiting for its acknowledgements sleeps until the last one arrives
    instead of polling the producer from the event loop every millisecond (under a steady stream
    every node has small batches, and that polling was most of a batch's fixed cost)."""
    global _producer
    if _producer is None:
        _producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG})
        threading.Thread(
            target=_serve_deliveries, args=(_producer,), name="sink-deliveries", daemon=True
        ).start()
    return _producer


def _serve_deliveries(out: Producer) -> None:
    while True:
        out.poll(DELIVERY_POLL_S)


class DeliveryFailed(RuntimeError):
    """An output was not written; the batch must not commit, so it is processed again."""


class SinkBatch:
    def __init__(self) -> None:
        self._pending: list[tuple[str, bytes | None, bytes]] = []

    def add(self, topic: TopicT, key: str | None, value: Any) -> None:
        self.add_encoded(topic, key, encode_json(value))

    def add_encoded(self, topic: TopicT, key: str | None, value: bytes) -> None:
        self._pending.append((topic.get_topic_name(), None if key is None else key.encode(), value))

    def add_vector(
        self, topic: TopicT, entity_type: str, entity_id: str, ts: int, features: dict[str, float]
    ) -> None:
        """One `real_time_features` message (CONTRACT.md): an entity's whole vector, keyed
        `<entity_type>:<id>`; counts its feature delay."""
        value = {"entity_type": entity_type, "entity_id": entity_id, "ts": ts, "features": features}
        self.add(topic, f"{entity_type}:{entity_id}", value)
        FEATURE_DELAY.observe(max(0.0, time.time() - ts / 1000))

    async def send_and_wait(self) -> None:
        if not self._pending:
            return
        out = producer(settings.bootstrap_servers)
        loop = asyncio.get_running_loop()
        all_delivered = loop.create_future()
        waiting = len(self._pending)
        errors: list[KafkaError] = []

        def delivered(err: KafkaError | None, _: Message) -> None:
            # Runs on the delivery thread.
            nonlocal waiting
            if err is not None:
                errors.append(err)
            waiting -= 1
            if waiting == 0:
                loop.call_soon_threadsafe(all_delivered.set_result, None)

        for topic, key, value in self._pending:
            while True:
                try:
                    out.produce(topic, value=value, key=key, on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full: the delivery thread drains it
                    await asyncio.sleep(QUEUE_FULL_WAIT_S)
        self._pending.clear()
        await all_delivered
        if errors:
            raise DeliveryFailed(f"{len(errors)} outputs not delivered, first: {errors[0]}")
