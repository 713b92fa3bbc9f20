"""The parser node against the real broker: every consumed message is applied, recognised as a
duplicate, or dead-lettered with its reason, and bad input never stops the good behind it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fuzz import fuzz_cases
from tests.harness import Cluster

OUTCOMES = ("applied", "duplicate", "dead_letter")
TOPICS = (
    "user_activity_events",
    "engagement_events",
    "content_events",
    "social_graph_events",
    "real_time_signals",
)


def counted(cluster: Cluster) -> dict[str, float]:
    worker = cluster.workers[0]
    return {
        outcome: sum(worker.metric("homemixer_messages_total", topic=t, outcome=outcome) for t in TOPICS)
        for outcome in OUTCOMES
    }


def wait_counted(cluster: Cluster, total: int, timeout: float = 120.0) -> dict[str, float]:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = counted(cluster)
        if sum(counts.values()) >= total:
            return counts
        time.sleep(0.5)
    raise AssertionError(f"only {counted(cluster)} of {total} messages accounted for")


@pytest.mark.slow
def test_fuzzed_messages_are_each_applied_or_dead_lettered(empty_broker: str, cluster: Cluster) -> None:
    cluster.start_worker()
    cases = list(fuzz_cases(10_500, seed=11))
    valid = [c for c in cases if c.valid]
    replays = valid[:200]
    messages = [(c.topic, c.key, c.value) for c in cases + replays]
    delivered = cluster.produce(messages)

    counts = wait_counted(cluster, len(messages))
    assert counts == {
        "applied": len(valid),
        "duplicate": len(replays),
        "dead_letter": len(cases) - len(valid),
    }

    expected_dead = {
        (d.topic, d.partition, d.offset) for d, c in zip(delivered, cases, strict=False) if not c.valid
    }

    def all_dead_letters(values: list[dict[str, Any]]) -> bool:
        return len(values) >= len(expected_dead)

    dead = cluster.read("system_events", all_dead_letters)
    assert {(d["source_topic"], d["partition"], d["offset"]) for d in dead} == expected_dead
    assert len(dead) == len(expected_dead), "each bad message is dead-lettered once"
    assert all(d["type"] == "dead_letter" and d["reason"] and len(d["raw"]) <= 4096 for d in dead)
    assert cluster.workers[0].alive()


def test_dead_letter_carries_the_contract_fields(empty_broker: str, cluster: Cluster) -> None:
    cluster.start_worker()
    raw = b'{"event_id": "x", "ts": 1, "type": "poke", "user_id": 5, "tweet_id": 9, "author_id": 7}'
    [d] = cluster.produce([("engagement_events", b"5", raw)])
    [letter] = cluster.read("system_events", lambda values: len(values) >= 1)
    assert set(letter) == {"type", "source_topic", "partition", "offset", "reason", "raw", "ts"}
    assert (letter["source_topic"], letter["partition"], letter["offset"]) == (
        d.topic,
        d.partition,
        d.offset,
    )
    assert "'poke' is not one of" in letter["reason"]
    assert letter["raw"] == raw.decode()
