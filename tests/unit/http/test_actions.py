"""The page's buttons and its new-items stream: what their requests may say, and that the events
they publish pass the pipeline's own validation (CONTRACT.md "Source events")."""

from __future__ import annotations

import orjson
import pytest

from streams.http.auth import mint_token
from streams.http.rules import (
    ENGAGEMENT_ACTIONS,
    MAX_ACTION_BODY_BYTES,
    RELATIONSHIP_ACTIONS,
    Action,
    HttpError,
    check_events_request,
    engagement_event,
    parse_engagement,
    parse_relationship,
    relationship_event,
)
from streams.ingest.codec import EventDecoder, encode_json
from streams.ingest.parser import ParserLimits, SourceEvent, parse

SECRET = "test-secret"
NOW = 1_763_769_600.0
NOW_MS = int(NOW * 1000)
LIMITS = ParserLimits(max_event_bytes=65536, max_future_skew_ms=3_600_000)


def bearer(user_id: int) -> str:
    return f"Bearer {mint_token(SECRET, user_id, now_s=NOW)}"


def status_of(result: object) -> int:
    assert isinstance(result, HttpError), f"expected an HttpError, got {result!r}"
    return result.status


def body(**fields: object) -> bytes:
    return orjson.dumps(fields)


def applied(topic: str, key: int, event: dict[str, object]) -> SourceEvent:
    parsed = parse(
        topic, str(key).encode(), encode_json(event), now_ms=NOW_MS, limits=LIMITS, decoder=EventDecoder()
    )
    assert isinstance(parsed, SourceEvent), parsed
    return parsed


@pytest.mark.parametrize("kind", ENGAGEMENT_ACTIONS)
def test_every_engagement_button_publishes_a_valid_event(kind: str) -> None:
    action = parse_engagement(body(type=kind, tweet_id=9))
    assert action == Action(kind, 9)
    event = applied("engagement_events", 4, engagement_event("web-1", NOW_MS, 4, action, 7))
    assert (event.type, event["user_id"], event["tweet_id"], event["author_id"]) == (kind, 4, 9, 7)


def test_a_reply_engagement_is_valid_too() -> None:
    event = applied("engagement_events", 4, engagement_event("reply-1", NOW_MS, 4, Action("reply", 9), 7))
    assert event.type == "reply"


@pytest.mark.parametrize("kind", RELATIONSHIP_ACTIONS)
def test_every_relationship_button_publishes_a_valid_event(kind: str) -> None:
    action = parse_relationship(body(type=kind, user_id=8), 4)
    assert action == Action(kind, 8)
    event = applied("social_graph_events", 4, relationship_event("web-2", NOW_MS, 4, action))
    assert (event.type, event["src_user_id"], event["dst_user_id"]) == (kind, 4, 8)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        body(type="impression", tweet_id=9),  # telemetry, not a button
        body(type="reply", tweet_id=9),  # a reply is a tweet: POST /tweets with reply_to
        body(type="like"),
        body(type="like", tweet_id=0),
        body(type="like", tweet_id=True),
        body(type="like", tweet_id="9"),
        body(type="like", tweet_id=9, author_id=7),  # the author comes from the tweet store
    ],
)
def test_bad_engagements_are_400(raw: bytes) -> None:
    assert status_of(parse_engagement(raw)) == 400


def test_an_oversized_action_is_413() -> None:
    assert status_of(parse_engagement(b" " * (MAX_ACTION_BODY_BYTES + 1))) == 413


@pytest.mark.parametrize(
    "raw", [body(type="like", user_id=8), body(type="follow", dst_user_id=8), body(type="follow", user_id=-1)]
)
def test_bad_relationships_are_400(raw: bytes) -> None:
    assert status_of(parse_relationship(raw, 4)) == 400


def test_nobody_follows_mutes_or_blocks_themselves() -> None:
    err = parse_relationship(body(type="follow", user_id=4), 4)
    assert status_of(err) == 400 and isinstance(err, HttpError) and "themselves" in err.message


def test_the_events_stream_checks_401_then_403_then_400() -> None:
    assert status_of(check_events_request(None, "4", {}, SECRET, NOW)) == 401
    assert status_of(check_events_request(bearer(5), "4", {}, SECRET, NOW)) == 403
    assert status_of(check_events_request(bearer(4), "4", {"since_id": "x"}, SECRET, NOW)) == 400
    assert status_of(check_events_request(bearer(4), "4", {"limit": "5"}, SECRET, NOW)) == 400
    assert status_of(check_events_request(bearer(4), "abc", {}, SECRET, NOW)) == 400
    assert check_events_request(bearer(4), "4", {}, SECRET, NOW) == (4, None)
    assert check_events_request(bearer(4), "4", {"since_id": "77"}, SECRET, NOW) == (4, 77)
