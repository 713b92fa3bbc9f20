"""Node `parser`: source topics -> valid, de-duplicated events; everything invalid -> dead letters.

Consumes: the five source topics. Emits: `system_events` dead letters, each applied event to the
internal topics of its ROUTES (keyed for the node that reads it), and users' latest activity to
Redis (`{app}:active`, for fanout's active-follower rule). Keeps: per partition, the
event ids it applied (bounded by event time) and the offset its state reflects.
"""

from __future__ import annotations

import functools
import itertools
import time
from typing import Any

from faust.types import TP
from prometheus_client import Counter

from streams.app import redis_client, settings
from streams.ingest.codec import EventDecoder, RegistrySchemas, encode_json
from streams.ingest.parser import ParserLimits, Rejected, SourceEvent, parse
from streams.ingest.schemas import SOURCE_TOPICS
from streams.ingest.system_events import dead_letter
from streams.runtime.batch import SOURCE_POSITION, SourceBatch, unapplied_records
from streams.runtime.metrics import REGISTRY
from streams.runtime.sink import SinkBatch
from streams.serving.view import ServingWrites
from streams.state.dedup import Seen
from topologies.topics import ROUTES, node_agent, node_state, sink_topics, source_topics

NODE = "parser"
# Whose activity an event is (CONTRACT.md: "Activity is any event by that user").
ACTOR_FIELD = {
    "user_activity_events": "user_id",
    "engagement_events": "user_id",
    "content_events": "author_id",
    "social_graph_events": "src_user_id",
}

state = node_state(NODE, SOURCE_TOPICS)
decoder = EventDecoder(
    RegistrySchemas(settings.schema_registry_url) if settings.schema_registry_url else None
)
limits = ParserLimits(
    max_event_bytes=settings.max_event_bytes,
    max_future_skew_ms=settings.max_future_skew_s * 1000,
)
dead_letters = sink_topics["system_events"]


OUTCOMES = ("applied", "duplicate", "dead_letter")
MESSAGES = Counter(
    "homemixer_messages_total",
    "Consumed source messages by topic and outcome (applied, duplicate, dead_letter).",
    ["topic", "outcome"],
    registry=REGISTRY,
)


@functools.cache
def count_of(topic: str, outcome: str) -> Counter:
    # Counted per message: looking the series up by its labels costs 2-3 µs, several times the
    # increment, so each series is looked up once.
    return MESSAGES.labels(topic, outcome)


def count(topic: str, outcome: str) -> None:
    count_of(topic, outcome).inc()


# Every series is exported from the start, at 0: a rate() needs a sample before a counter's first
# increment to see it, and the dead-letter share divides by these.
for _name, _outcome in itertools.product(SOURCE_TOPICS, OUTCOMES):
    count_of(_name, _outcome)


def forward(outputs: SinkBatch, tp: TP, offset: int, fields: dict[str, Any]) -> None:
    """Send an applied event to its routes, stamped with its source position so that a node can
    drop what a restarted parser sends again. A list-valued key (a signal's `tweet_ids`) sends
    one message per element, each with its own event id and position."""
    message: bytes | None = None  # the same for every route with a scalar key: encoded once
    for route, key_field in ROUTES.get(tp.topic, ()):
        key = fields[key_field]
        if isinstance(key, list):
            for index, element in enumerate(key):
                item = {
                    **fields,
                    "event_id": f"{fields['event_id']}/{element}",
                    "tweet_id": element,
                    SOURCE_POSITION: [tp.partition, offset, index],
                }
                outputs.add(route, str(element), item)
        elif key is not None:
            if message is None:
                message = encode_json({**fields, SOURCE_POSITION: [tp.partition, offset, 0]})
            outputs.add_encoded(route, str(key), message)


async def parse_batch(batch: SourceBatch, outputs: SinkBatch) -> None:
    tp = batch.tp
    now_ms = int(time.time() * 1000)
    last_active: dict[int, int] = {}
    for message in batch.records:
        offset = message.offset
        result = parse(tp.topic, message.key, message.value, now_ms=now_ms, limits=limits, decoder=decoder)
        if isinstance(result, SourceEvent):
            seen = state.dedup(tp).check(result.event_id, result.ts)
            if seen is Seen.DUPLICATE:
                count(tp.topic, "duplicate")
                continue
            if seen is Seen.TOO_OLD:
                result = Rejected(
                    f"ts {result.ts} is older than the duplicate-detection horizon "
                    f"{state.dedup(tp).horizon_ms} (HOMEMIXER_DEDUP_RETENTION_S behind this partition)"
                )
        if isinstance(result, Rejected):
            record = dead_letter(tp.topic, tp.partition, offset, result.reason, message.value, now_ms)
            outputs.add(dead_letters, NODE, record)
            count(tp.topic, "dead_letter")
            continue
        count(tp.topic, "applied")
        actor = result.fields[ACTOR_FIELD[tp.topic]] if tp.topic in ACTOR_FIELD else None
        if actor is not None:
            last_active[actor] = max(last_active.get(actor, 0), result.ts)
        forward(outputs, tp, offset, result.fields)
    writes = ServingWrites(redis_client(), settings.timeline_max)
    writes.activity(last_active)
    await writes.execute()


for _topic in source_topics.values():
    node_agent(_topic, f"{NODE}.{_topic.get_topic_name()}", state, unapplied_records, parse_batch)
