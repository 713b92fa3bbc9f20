"""The event parser: raw Kafka message in, a valid normalised event or a rejection reason out.

Pure: no I/O and no clock (the caller passes `now_ms`), so every rule here is tested directly.
The rules are the contract's ("Source events"): the Avro schema of the topic, the message key,
and the few limits a schema cannot express.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.ingest.avro_validation import SchemaViolation
from streams.ingest.codec import DecodeError, EventDecoder
from streams.ingest.schemas import KEY_FIELD, topic_schema

MAX_TEXT_CHARS = 280
# Longer ids are someone's payload smuggled into a key, not an id.
MAX_EVENT_ID_CHARS = 256
ID_FIELDS = (
    "user_id",
    "tweet_id",
    "author_id",
    "src_user_id",
    "dst_user_id",
    "reply_to",
    "quote_of",
    "retweet_of",
)
NON_NEGATIVE_FIELDS = ("dwell_ms", "media_count")


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """A validated event of a source topic; `fields` holds every schema field, normalised."""

    topic: str
    event_id: str
    ts: int
    type: str
    fields: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def get(self, name: str, default: Any = None) -> Any:
        value = self.fields.get(name)
        return default if value is None else value


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a message cannot be processed; it goes to the dead-letter path with this reason."""

    reason: str


@dataclass(frozen=True)
class ParserLimits:
    max_event_bytes: int
    max_future_skew_ms: int


def parse(
    topic: str,
    key: bytes | None,
    raw: bytes | None,
    *,
    now_ms: int,
    limits: ParserLimits,
    decoder: EventDecoder,
) -> SourceEvent | Rejected:
    if raw is None or len(raw) == 0:
        return Rejected("empty message")
    if len(raw) > limits.max_event_bytes:
        return Rejected(f"message of {len(raw)} bytes exceeds the limit of {limits.max_event_bytes}")
    try:
        record = decoder.decode(topic, raw)
        fields = topic_schema(topic).validate(record, "")
    except (DecodeError, SchemaViolation) as exc:
        return Rejected(str(exc))
    problem = _semantic_problem(topic, key, fields, now_ms, limits)
    if problem is not None:
        return Rejected(problem)
    return SourceEvent(topic, fields["event_id"], fields["ts"], fields["type"], fields)


def _semantic_problem(
    topic: str, key: bytes | None, fields: dict[str, Any], now_ms: int, limits: ParserLimits
) -> str | None:
    event_id: str = fields["event_id"]
    if not event_id or len(event_id) > MAX_EVENT_ID_CHARS:
        return f"event_id must be 1 to {MAX_EVENT_ID_CHARS} characters"
    ts: int = fields["ts"]
    if ts < 0:
        return f"ts {ts} is negative; it must be milliseconds since the Unix epoch"
    if ts > now_ms + limits.max_future_skew_ms:
        return f"ts {ts} is {ts - now_ms} ms in the future (more than the allowed clock skew)"
    for name in ID_FIELDS:
        value = fields.get(name)
        if value is not None and value <= 0:
            return f"{name} must be a positive integer, got {value}"
    for name in NON_NEGATIVE_FIELDS:
        value = fields.get(name)
        if value is not None and value < 0:
            return f"{name} must not be negative, got {value}"
    text = fields.get("text")
    if text is not None and len(text) > MAX_TEXT_CHARS:
        return f"text has {len(text)} characters; at most {MAX_TEXT_CHARS} are allowed"
    expected_key = str(fields[KEY_FIELD[topic]])
    if key is None:
        return f"message has no key; it must be {KEY_FIELD[topic]} ({expected_key})"
    if key != expected_key.encode():
        shown = key[:64].decode("utf-8", "backslashreplace")
        return f"message key {shown!r} does not match {KEY_FIELD[topic]} {expected_key}"
    return None
