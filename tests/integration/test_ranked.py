"""`mode=ranked` end to end: events through Kafka, features into Redis, a ranked page through HTTP
with scores and reasons, and the bandit credited when the viewer engages with what it served."""

from __future__ import annotations

import time
from typing import Any

from tests.harness import Cluster
from tests.integration.test_timelines import activity, get_timeline, graph, now_ms, seq, tweet


def engagement(user: int, tweet_id: int, author: int, kind: str) -> tuple[str, str, dict[str, Any]]:
    event = {
        "event_id": f"e{next(seq)}",
        "ts": now_ms(),
        "type": kind,
        "user_id": user,
        "tweet_id": tweet_id,
        "author_id": author,
    }
    return "engagement_events", str(user), event


def signal(tweet_id: int) -> tuple[str, str, dict[str, Any]]:
    event = {
        "event_id": f"s{next(seq)}",
        "ts": now_ms(),
        "type": "breaking_news",
        "topic": "storm",
        "weight": 5.0,
        "tweet_ids": [tweet_id],
    }
    return "real_time_signals", "storm", event


def test_ranked_page_scores_explains_and_learns(empty_broker: str, cluster: Cluster) -> None:
    worker = cluster.start_worker()
    viewer, friend, other, stranger = 1, 2, 3, 9
    cluster.produce([activity(viewer), graph("follow", viewer, friend), graph("follow", viewer, other)])
    assert get_timeline(worker, viewer)[0] == 200  # materialise the home timeline
    popular, plain, theirs, trending = tweet(friend), tweet(friend), tweet(other), tweet(stranger)
    cluster.produce([popular, plain, theirs, trending])
    ids = {
        name: t[2]["tweet_id"]
        for name, t in {"popular": popular, "plain": plain, "theirs": theirs, "trending": trending}.items()
    }
    fans = range(100, 140)
    cluster.produce(
        [
            engagement(f, ids["popular"], friend, kind)
            for f in fans
            for kind in ("impression", "like", "reply")
        ]
        + [engagement(f, ids["plain"], friend, "impression") for f in fans]
        + [signal(ids["trending"])]
    )

    deadline = time.monotonic() + 30
    while True:
        status, body = get_timeline(worker, viewer, mode="ranked", limit=10)
        assert status == 200, body
        got = {item["tweet_id"]: item for item in body["items"]}
        if set(ids.values()) <= set(got) and got[ids["popular"]]["score"] > got[ids["plain"]]["score"]:
            break
        assert time.monotonic() < deadline, f"ranked page never settled: {body}"
        time.sleep(0.3)
    assert body["bucket"] in ("control", "adaptive") and body["strategy"]
    order = [item["tweet_id"] for item in body["items"]]
    assert order.index(ids["popular"]) < order.index(ids["plain"]), "likes and replies rank a tweet up"
    assert got[ids["trending"]]["source"] == "trending" and "trending" in got[ids["trending"]]["reason"]
    assert got[ids["popular"]]["source"] == "push" and got[ids["popular"]]["reason"]
    assert all(isinstance(item["score"], float) for item in body["items"])

    served_before = worker.metric("homemixer_ab_served", bucket=body["bucket"])
    assert served_before >= len(body["items"])
    cluster.produce([engagement(viewer, ids["popular"], friend, "like")])
    deadline = time.monotonic() + 30
    while worker.metric("homemixer_ab_engaged", bucket=body["bucket"]) < 1:
        assert time.monotonic() < deadline, "the like on a served tweet was never credited"
        time.sleep(0.3)
