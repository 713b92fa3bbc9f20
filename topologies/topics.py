"""Source and sink topics of the contract. Messages stay raw bytes: the parser decodes them."""

from __future__ import annotations

from faust.types import TopicT

from streams.app import app
from streams.schemas import SINK_TOPICS, SOURCE_TOPICS


def _raw_topic(name: str) -> TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


source_topics: dict[str, TopicT] = {name: _raw_topic(name) for name in SOURCE_TOPICS}
sink_topics: dict[str, TopicT] = {name: _raw_topic(name) for name in SINK_TOPICS}


async def declare_sink_topics() -> None:
    """Create the sink topics at start, so that consumers can subscribe before the first output."""
    for topic in sink_topics.values():
        await topic.maybe_declare()


app.task(declare_sink_topics)
