"""Node `parser`: source topics -> valid, de-duplicated events; everything invalid -> dead letters.

Consumes: the five source topics. Emits: `system_events` dead letters. Keeps: per partition, the
event ids it applied (bounded by event time) and the offset its state reflects.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import cast

from faust import Stream
from faust.types import TP, EventT, StreamT

from streams.app import app, settings
from streams.codec import EventDecoder, RegistrySchemas
from streams.metrics import METRICS
from streams.node import NodeState
from streams.parser import ParserLimits, Rejected, parse
from streams.sink import SinkBatch
from streams.state.dedup import Deduplicator
from streams.system_events import dead_letter
from topologies.topics import sink_topics, source_topics

NODE = "parser"
# Big enough to amortise the state commit, small enough that a batch is a few ms of work.
BATCH_MAX = 2000
BATCH_WITHIN_S = 0.05

state = NodeState(NODE, settings.data_dir)
decoder = EventDecoder(
    RegistrySchemas(settings.schema_registry_url) if settings.schema_registry_url else None
)
limits = ParserLimits(
    max_event_bytes=settings.max_event_bytes,
    max_future_skew_ms=settings.max_future_skew_s * 1000,
)
dedup_retention_ms = settings.dedup_retention_s * 1000
dead_letters = sink_topics["system_events"]
dedups: dict[TP, Deduplicator] = {}


def deduplicator(tp: TP) -> Deduplicator:
    dedup = dedups.get(tp)
    if dedup is None:
        dedup = dedups[tp] = Deduplicator(state.store(tp), dedup_retention_ms)
    return dedup


def count(topic: str, outcome: str) -> None:
    METRICS.inc("homemixer_messages_total", topic=topic, outcome=outcome)


async def parse_events(stream: StreamT[bytes]) -> None:
    # StreamT does not declare take_events; the Stream every agent gets has it.
    async for events in cast(Stream[bytes], stream).take_events(BATCH_MAX, within=BATCH_WITHIN_S):
        await process_batch(events)


async def process_batch(events: Sequence[EventT[bytes]]) -> None:
    now_ms = int(time.time() * 1000)
    outputs = SinkBatch()
    last_offsets: dict[TP, int] = {}
    watermarks: dict[TP, int] = {}
    for event in events:
        message = event.message
        tp, offset = message.tp, message.offset
        if state.already_applied(tp, offset):
            continue
        last_offsets[tp] = offset
        result = parse(tp.topic, message.key, message.value, now_ms=now_ms, limits=limits, decoder=decoder)
        if isinstance(result, Rejected):
            record = dead_letter(tp.topic, tp.partition, offset, result.reason, message.value, now_ms)
            outputs.add(dead_letters, NODE, record)
            count(tp.topic, "dead_letter")
            continue
        if deduplicator(tp).first_time(result.event_id, result.ts):
            count(tp.topic, "applied")
            watermarks[tp] = max(watermarks.get(tp, 0), result.ts)
        else:
            count(tp.topic, "duplicate")
    for tp, watermark in watermarks.items():
        deduplicator(tp).expire(watermark)
    await outputs.send_and_wait()
    state.commit(last_offsets)


for _topic in source_topics.values():
    app.agent(_topic, name=f"{NODE}.{_topic.get_topic_name()}")(parse_events)
