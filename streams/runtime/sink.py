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
import time
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from faust.types import TopicT

from streams.app import settings
from streams.ingest.codec import encode_json
from streams.runtime.metrics import FEATURE_DELAY_BUCKETS, METRICS

# Wait between polls for delivery reports: short, because a batch's commit waits on them.
DELIVERY_POLL_S = 0.001
PRODUCER_CONFIG = {
    "linger.ms": 2,
    "partitioner": "murmur2_random",
    "max.in.flight.requests.per.connection": 1,
    "message.max.bytes": 8 * 1024 * 1024,
}

_producer: Producer | None = None


def producer(bootstrap: str) -> Producer:
    """The process's output producer, created on first use."""
    global _producer
    if _producer is None:
        _producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG})
    return _producer


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
        delay_s = max(0.0, time.time() - ts / 1000)
        METRICS.observe("homemixer_feature_delay_seconds", delay_s, FEATURE_DELAY_BUCKETS)

    async def send_and_wait(self) -> None:
        if not self._pending:
            return
        out = producer(settings.bootstrap_servers)
        waiting = len(self._pending)
        errors: list[KafkaError] = []

        def delivered(err: KafkaError | None, _: Message) -> None:
            nonlocal waiting
            waiting -= 1
            if err is not None:
                errors.append(err)

        for topic, key, value in self._pending:
            while True:
                try:
                    out.produce(topic, value=value, key=key, on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    out.poll(0)
                    await asyncio.sleep(DELIVERY_POLL_S)
        self._pending.clear()
        while waiting > 0:
            out.poll(0)
            if waiting > 0:
                await asyncio.sleep(DELIVERY_POLL_S)
        if errors:
            raise DeliveryFailed(f"{len(errors)} outputs not delivered, first: {errors[0]}")
