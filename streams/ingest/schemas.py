"""The Avro schemas in `schemas/`: the single definition of every event, loaded by topic name."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from streams.ingest.avro_validation import Check, compile_record

SOURCE_TOPICS = (
    "user_activity_events",
    "engagement_events",
    "content_events",
    "social_graph_events",
    "real_time_signals",
)
SINK_TOPICS = ("real_time_features", "user_scores", "content_metrics", "system_events")

# The field whose decimal string is each source topic's message key (CONTRACT.md, "Topics").
KEY_FIELD = {
    "user_activity_events": "user_id",
    "engagement_events": "user_id",
    "content_events": "author_id",
    "social_graph_events": "src_user_id",
    "real_time_signals": "topic",
}


@dataclass(frozen=True)
class TopicSchema:
    topic: str
    avro: dict[str, Any]
    validate: Check

    @property
    def types(self) -> tuple[str, ...]:
        """The `type` enum's symbols, for events that have one."""
        for f in self.avro["fields"]:
            if f["name"] == "type" and isinstance(f["type"], dict):
                return tuple(f["type"]["symbols"])
        return ()


def schema_text(topic: str) -> str:
    return (resources.files("homemixer_schemas") / f"{topic}.avsc").read_text("utf-8")


@cache
def topic_schema(topic: str) -> TopicSchema:
    avro = json.loads(schema_text(topic))
    return TopicSchema(topic=topic, avro=avro, validate=compile_record(avro))
