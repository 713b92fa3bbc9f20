"""`content_metrics` windows against a reference computed from the produced events: one final
emission per closed window, late events counted in `system_events`, not in any window."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Any

from tests.harness import Cluster

WINDOW_MS = 60_000
GRACE_MS = 10_000
T0 = 1_700_000_000_000


def stream_with_late_events(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events = []
    ts = T0
    for i in range(1500):
        ts += rng.randint(0, 800)
        delay = rng.choice([0, 0, 0, 5_000, 30_000, 120_000])
        events.append(
            {
                "event_id": f"w{i}",
                "ts": ts - delay,
                "type": rng.choice(["impression", "impression", "like", "click"]),
                "user_id": 7,
                "tweet_id": 500 + rng.randint(1, 8),
                "author_id": 9,
            }
        )
    return events


def reference_windows(
    events: list[dict[str, Any]], partition_of: dict[int, int]
) -> tuple[dict[tuple[int, int], Counter[str]], set[str], int]:
    """Replays the contract's rule per partition in arrival order: (windows, late ids, close bound)."""
    windows: dict[tuple[int, int], Counter[str]] = defaultdict(Counter)
    late: set[str] = set()
    watermark: dict[int, int] = {}
    for e in events:
        p = partition_of[e["tweet_id"]]
        start = e["ts"] // WINDOW_MS * WINDOW_MS
        if p in watermark and start + WINDOW_MS + GRACE_MS <= watermark[p]:
            late.add(e["event_id"])
            continue
        windows[(e["tweet_id"], start)][e["type"]] += 1
        watermark[p] = max(watermark.get(p, e["ts"]), e["ts"])
    closed = {
        k: v for k, v in windows.items() if k[1] + WINDOW_MS + GRACE_MS <= watermark[partition_of[k[0]]]
    }
    return closed, late, len(closed)


def test_windows_close_once_with_late_events_reported(empty_broker: str, cluster: Cluster) -> None:
    cluster.start_worker(HOMEMIXER_PARTITIONS="1")
    events = stream_with_late_events(seed=4)
    cluster.produce(("engagement_events", str(e["user_id"]), e) for e in events)
    # One user (one source partition) and one partition inside: the window node sees the
    # produced order, which the reference replays.
    closed, late, expected = reference_windows(events, {t: 0 for t in range(500, 510)})
    metrics = cluster.read("content_metrics", lambda v: len(v) >= expected)
    got = {(m["tweet_id"], m["window_start"]): Counter(m["counts"]) for m in metrics}
    assert len(metrics) == len(got), "each window is emitted once"
    assert got == closed
    assert all(m["final"] and m["window_end"] - m["window_start"] == WINDOW_MS for m in metrics)
    system = cluster.read(
        "system_events", lambda v: sum(1 for s in v if s["type"] == "late_event") >= len(late)
    )
    assert {s["attributes"]["event_id"] for s in system if s["type"] == "late_event"} == late

    # Velocity: engagements in the five one-minute hops up to each tweet's latest engagement.
    expected_velocity = {}
    for tweet_id in {e["tweet_id"] for e in events}:
        stamps = [e["ts"] for e in events if e["tweet_id"] == tweet_id]
        end = max(stamps) // 60_000 * 60_000 + 60_000
        expected_velocity[str(tweet_id)] = sum(1 for t in stamps if end - 300_000 <= t < end)

    def velocities(values: list[dict[str, Any]]) -> dict[str, float]:
        return {
            v["entity_id"]: v["features"]["velocity.5m"] for v in values if "velocity.5m" in v["features"]
        }

    found = velocities(
        cluster.read("real_time_features", lambda v: velocities(v).keys() >= expected_velocity.keys())
    )
    assert found == expected_velocity


def test_a_window_counts_every_event_of_every_source_partition(empty_broker: str, cluster: Cluster) -> None:
    """Likes on one tweet spread over the source partitions, then an impression ten minutes later
    on one of them: whichever partition the parser reads first, the window waits for the others
    (or for them to go quiet) and counts every like; a like arriving after it closed is late."""
    cluster.start_worker(HOMEMIXER_IDLE_S="2")
    start = T0 // WINDOW_MS * WINDOW_MS
    likes = [
        {"event_id": f"l{u}", "ts": start + 1_000 * u, "type": "like", "user_id": u, "tweet_id": 77}
        | {"author_id": 9}
        for u in range(1, 8)
    ]
    impression = {
        "event_id": "i1",
        "ts": start + 10 * WINDOW_MS,
        "type": "impression",
        "user_id": 8,
        "tweet_id": 77,
    } | {"author_id": 9}
    delivered = cluster.produce(("engagement_events", str(e["user_id"]), e) for e in [*likes, impression])
    assert len({d.partition for d in delivered}) >= 3, "the likes are spread over the partitions"

    def window(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [m for m in values if m["tweet_id"] == 77 and m["window_start"] == start]

    (closed,) = window(cluster.read("content_metrics", lambda v: bool(window(v))))
    assert closed["counts"] == {"like": 7}

    straggler = {"event_id": "l99", "ts": start + 30_000, "type": "like", "user_id": 3, "tweet_id": 77}
    cluster.produce([("engagement_events", "3", straggler | {"author_id": 9})])
    system = cluster.read(
        "system_events", lambda v: any(s.get("attributes", {}).get("event_id") == "l99" for s in v)
    )
    (late,) = [s for s in system if s.get("attributes", {}).get("event_id") == "l99"]
    assert late["type"] == "late_event"
    # The straggler was processed before its late event was read: a second emission would be in.
    assert len(window(cluster.read("content_metrics", lambda v: bool(window(v))))) == 1, "emitted once"
