from typing import Any

import orjson
import pytest

from streams.ingest.codec import EventDecoder, encode_avro
from streams.ingest.parser import ParserLimits, Rejected, SourceEvent, parse
from tests.fuzz import NOW_MS, fuzz_cases, valid_event

LIMITS = ParserLimits(max_event_bytes=65536, max_future_skew_ms=3_600_000)
DECODER = EventDecoder()


def run(topic: str, key: bytes | None, value: Any) -> SourceEvent | Rejected:
    raw = orjson.dumps(value) if isinstance(value, dict) else value
    return parse(topic, key, raw, now_ms=NOW_MS, limits=LIMITS, decoder=DECODER)


@pytest.mark.parametrize(
    "topic",
    [
        "user_activity_events",
        "engagement_events",
        "content_events",
        "social_graph_events",
        "real_time_signals",
    ],
)
def test_valid_events_of_every_topic_are_applied_and_normalised(topic: str) -> None:
    key, event = valid_event(topic, 3, NOW_MS)
    result = run(topic, key, event)
    assert isinstance(result, SourceEvent)
    assert (result.event_id, result.ts, result.type) == ("fuzz-3", NOW_MS, event["type"])
    assert all(result[name] == value for name, value in event.items())


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"type": "poke"}, "type: 'poke' is not one of"),
        ({"user_id": "42"}, "user_id: expected long, got a string"),
        ({"user_id": True}, "user_id: expected long"),
        ({"tweet_id": 0}, "tweet_id must be a positive integer"),
        ({"tweet_id": 2**63}, "out of range for long"),
        ({"ts": -5}, "ts -5 is negative"),
        ({"ts": NOW_MS + 7_200_000}, "in the future"),
        ({"dwell_ms": -1}, "dwell_ms must not be negative"),
        ({"event_id": ""}, "event_id must be 1 to"),
    ],
)
def test_each_rule_has_a_clear_reason(change: dict[str, Any], reason: str) -> None:
    key, event = valid_event("engagement_events", 1, NOW_MS)
    result = run("engagement_events", key, {**event, **change})
    assert isinstance(result, Rejected)
    assert reason in result.reason


def test_missing_field_key_and_text_length() -> None:
    key, event = valid_event("content_events", 2, NOW_MS)
    del event["author_id"]
    assert run("content_events", key, event) == Rejected("missing required field 'author_id'")
    key, event = valid_event("content_events", 2, NOW_MS)
    assert "text has 281 characters" in str(run("content_events", key, {**event, "text": "é" * 281}))
    assert isinstance(run("content_events", key, {**event, "text": "é" * 280}), SourceEvent)
    assert "does not match author_id" in str(run("content_events", b"999", event))
    assert "message has no key" in str(run("content_events", None, event))


def test_avro_and_json_are_held_to_the_same_schema() -> None:
    class OneSchema:
        def writer_schema(self, schema_id: int) -> Any:
            import fastavro

            from streams.ingest.schemas import topic_schema

            assert schema_id == 11
            return fastavro.parse_schema(topic_schema("engagement_events").avro)

    key, event = valid_event("engagement_events", 4, NOW_MS)
    record = {**event, "dwell_ms": None}
    raw = encode_avro("engagement_events", record, schema_id=11)
    result = parse(
        "engagement_events",
        key,
        raw,
        now_ms=NOW_MS,
        limits=LIMITS,
        decoder=EventDecoder(OneSchema()),
    )
    assert isinstance(result, SourceEvent) and result["tweet_id"] == event["tweet_id"]
    bad = encode_avro("engagement_events", {**record, "tweet_id": -3}, schema_id=11)
    rejected = parse(
        "engagement_events",
        key,
        bad,
        now_ms=NOW_MS,
        limits=LIMITS,
        decoder=EventDecoder(OneSchema()),
    )
    assert rejected == Rejected("tweet_id must be a positive integer, got -3")
    corrupt = parse(
        "engagement_events",
        key,
        raw[:9],
        now_ms=NOW_MS,
        limits=LIMITS,
        decoder=EventDecoder(OneSchema()),
    )
    assert isinstance(corrupt, Rejected) and "does not decode" in corrupt.reason


def test_fuzz_every_case_is_applied_or_rejected_as_expected() -> None:
    cases = list(fuzz_cases(12_000))
    assert len(cases) >= 10_000
    for case in cases:
        result = run(case.topic, case.key, case.value)
        expected = SourceEvent if case.valid else Rejected
        assert isinstance(result, expected), (case.what, case.value[:200] if case.value else None)
