"""Generated malformed (and some valid) source messages for the parser's fuzz tests.

Each case knows what the parser must do with it: `valid` True means it must be applied, False
that it must be dead-lettered. Keys, values and sizes cover what the contract calls invalid.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

NOW_MS = 1_700_000_000_000


@dataclass(frozen=True)
class FuzzCase:
    topic: str
    key: bytes | None
    value: bytes | None
    valid: bool
    what: str


def valid_event(topic: str, n: int, ts: int) -> tuple[bytes, dict[str, Any]]:
    """A valid event of `topic` with id `fuzz-<n>`, and its message key."""
    user = 1 + n % 97
    base: dict[str, Any] = {"event_id": f"fuzz-{n}", "ts": ts}
    if topic == "user_activity_events":
        event = {**base, "type": "page_view", "user_id": user, "surface": "home"}
        key = str(user)
    elif topic == "engagement_events":
        event = {**base, "type": "like", "user_id": user, "tweet_id": 10_000 + n, "author_id": 7}
        key = str(user)
    elif topic == "content_events":
        event = {
            **base,
            "type": "tweet_create",
            "tweet_id": 20_000 + n,
            "author_id": user,
            "text": "hello",
        }
        key = str(user)
    elif topic == "social_graph_events":
        event = {**base, "type": "follow", "src_user_id": user, "dst_user_id": user + 1}
        key = str(user)
    else:
        event = {**base, "type": "trending_topic", "topic": "t", "weight": 1.5, "tweet_ids": [1]}
        key = "t"
    return key.encode(), event


# Oversized payloads: a few past the 64 KiB limit, and now and then one of several megabytes.
OVERSIZED_EVERY = 500
OVERSIZED_BYTES = (70_000, 200_000, 3_000_000)
OPTIONAL = ("surface", "text", "tweet_ids")
LONG_FIELDS = ("ts", "user_id", "tweet_id", "author_id", "src_user_id", "dst_user_id")
TOPICS = (
    "user_activity_events",
    "engagement_events",
    "content_events",
    "social_graph_events",
    "real_time_signals",
)


def _mutations(rng: random.Random, event: dict[str, Any], key: bytes) -> list[FuzzCase]:
    """Ways to break (or harmlessly vary) one valid event; the topic is filled in by the caller."""
    required = [f for f in event if f not in OPTIONAL]
    victim = rng.choice(required)
    raw = orjson.dumps(event)
    wrong_type: Any = rng.choice(["x", 1.5, None, [], {}, True, 2**63])
    cut = rng.randint(0, len(raw) - 1)
    cases = [
        FuzzCase("", key, raw[:cut], False, "truncated JSON"),
        FuzzCase("", key, raw + b"}", False, "trailing garbage"),
        FuzzCase("", key, raw.replace(b'"', b"'", 1), False, "broken quoting"),
        FuzzCase(
            "",
            key,
            orjson.dumps({k: v for k, v in event.items() if k != victim}),
            False,
            f"missing {victim}",
        ),
        FuzzCase("", key, orjson.dumps({**event, "type": "nonsense"}), False, "unknown type"),
        FuzzCase("", key, orjson.dumps({**event, "ts": -rng.randint(1, 10**12)}), False, "negative ts"),
        FuzzCase("", key, orjson.dumps({**event, "ts": NOW_MS + 10**13}), False, "far-future ts"),
        FuzzCase("", key, b"", False, "empty payload"),
        FuzzCase("", key, None, False, "null payload"),
        FuzzCase("", key, b"\xff\xfe" + raw[2:], False, "invalid UTF-8"),
        FuzzCase("", key, b"[1, 2, 3]", False, "JSON that is not an object"),
        FuzzCase("", key, b"\x00\x00\x00\x00\x01garbage", False, "Avro frame, no registry"),
        FuzzCase("", b"not-the-key", raw, False, "mismatched key"),
        FuzzCase("", None, raw, False, "missing key"),
    ]
    if victim in LONG_FIELDS:
        cases.append(
            FuzzCase(
                "",
                key,
                orjson.dumps({**event, victim: wrong_type}),
                False,
                f"wrong type for {victim}",
            )
        )
    return cases


def fuzz_cases(count: int, seed: int = 1) -> Iterator[FuzzCase]:
    """`count` cases: mostly malformed, with valid events and exact replays interleaved."""
    rng = random.Random(seed)
    n = 0
    produced = 0
    while produced < count:
        if produced % OVERSIZED_EVERY == 0:
            size = rng.choice(OVERSIZED_BYTES)
            yield FuzzCase(TOPICS[n % len(TOPICS)], b"1", b"{" + b" " * size + b"}", False, "oversized")
            produced += 1
        topic = TOPICS[n % len(TOPICS)]
        key, event = valid_event(topic, n, NOW_MS + n)
        n += 1
        if rng.random() < 0.15:
            extra = {**event, "unexpected_field": rng.randint(0, 9)}
            yield FuzzCase(topic, key, orjson.dumps(extra), True, "valid, with an extra field")
            produced += 1
            continue
        for case in rng.sample(_mutations(rng, event, key), 3):
            yield FuzzCase(topic, case.key, case.value, case.valid, case.what)
            produced += 1
