"""Timelines end to end: events in through Kafka, timelines out through HTTP, against the rules of
CONTRACT.md ("Timelines", "HTTP"), a Redis loss, and the status codes."""

from __future__ import annotations

import itertools
import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from streams.http.auth import mint_token
from streams.snowflake import SnowflakeGenerator
from tests.harness import Cluster, WorkerProcess, flush_redis, on_redis_cluster, sync_redis_client

SECRET = "test-secret"
ids = SnowflakeGenerator(worker=7)
seq = itertools.count()


def now_ms() -> int:
    return int(time.time() * 1000)


def graph(kind: str, src: int, dst: int) -> tuple[str, str, dict[str, Any]]:
    event = {
        "event_id": f"g{next(seq)}",
        "ts": now_ms(),
        "type": kind,
        "src_user_id": src,
        "dst_user_id": dst,
    }
    return "social_graph_events", str(src), event


def tweet(
    author: int, tweet_id: int | None = None, kind: str = "tweet_create"
) -> tuple[str, str, dict[str, Any]]:
    event = {
        "event_id": f"c{next(seq)}",
        "ts": now_ms(),
        "type": kind,
        "tweet_id": tweet_id or ids.next_id(),
        "author_id": author,
        "text": f"hello from {author}",
    }
    return "content_events", str(author), event


def activity(user: int) -> tuple[str, str, dict[str, Any]]:
    event = {"event_id": f"a{next(seq)}", "ts": now_ms(), "type": "page_view", "user_id": user}
    return "user_activity_events", str(user), event


def get_timeline(worker: WorkerProcess, user: int, **params: Any) -> tuple[int, dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    status, body = worker.get(
        f"/timelines/{user}?{query}", {"Authorization": f"Bearer {mint_token(SECRET, user)}"}
    )
    return status, json.loads(body)


def wait_timeline(
    worker: WorkerProcess, user: int, ok: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, body = get_timeline(worker, user, limit=200)
        if status == 200 and ok(body):
            return body
        assert time.monotonic() < deadline, f"timeline of {user} never matched: {status} {body}"
        time.sleep(0.2)


def tweet_ids(body: dict[str, Any]) -> list[int]:
    return [item["tweet_id"] for item in body["items"]]


def test_push_pull_follow_unfollow_block_delete_and_redis_loss(
    empty_broker: str, cluster: Cluster, redis_url: str
) -> None:
    worker = cluster.start_worker(HOMEMIXER_CELEBRITY_THRESHOLD="3")
    reader, author, celebrity = 1, 2, 3
    cluster.produce(
        [activity(reader), graph("follow", reader, author), graph("follow", reader, celebrity)]
        + [graph("follow", fan, celebrity) for fan in (4, 5)]
    )

    def social_of(values: list[dict[str, Any]], user: int) -> dict[str, float]:
        """The social-graph family of the user's newest vector (which holds its other families too)."""
        found = [
            v["features"]
            for v in values
            if v["entity_id"] == str(user) and "social.followers" in v["features"]
        ]
        return {k: v for k, v in found[-1].items() if k.startswith("social.")} if found else {}

    features = cluster.read(
        "real_time_features",
        lambda v: (
            social_of(v, celebrity).get("social.followers") == 3
            and social_of(v, reader).get("social.following") == 2
        ),
    )
    assert social_of(features, celebrity) == {
        "social.followers": 3.0,
        "social.following": 0.0,
        "social.mutual": 0.0,
    }
    assert social_of(features, reader) == {
        "social.followers": 0.0,
        "social.following": 2.0,
        "social.mutual": 0.0,
    }
    first = wait_timeline(worker, reader, lambda b: True)
    assert first["rebuilt"] is True and first["items"] == []

    pushed = tweet(author)
    pulled = tweet(celebrity)
    cluster.produce([pushed, pulled])
    body = wait_timeline(worker, reader, lambda b: len(b["items"]) == 2)
    assert tweet_ids(body) == sorted([pushed[2]["tweet_id"], pulled[2]["tweet_id"]], reverse=True)
    sources = {item["tweet_id"]: item["source"] for item in body["items"]}
    assert sources == {pushed[2]["tweet_id"]: "push", pulled[2]["tweet_id"]: "pull"}
    assert body["rebuilt"] is False
    held = sync_redis_client(redis_url).zrange(cluster.keys.timeline_key(reader), 0, -1)
    assert str(pulled[2]["tweet_id"]).encode() not in held, "a celebrity's tweet is never pushed"

    # Paging: one item per page, newest first, each once.
    status, page1 = get_timeline(worker, reader, limit=1)
    status, page2 = get_timeline(worker, reader, limit=1, max_id=page1["next_max_id"])
    assert tweet_ids(page1) + tweet_ids(page2) == tweet_ids(body)

    cluster.produce([graph("block", reader, celebrity), graph("unfollow", reader, author)])
    wait_timeline(worker, reader, lambda b: b["items"] == [])

    cluster.produce([graph("unblock", reader, celebrity), graph("follow", reader, author)])
    body = wait_timeline(worker, reader, lambda b: len(b["items"]) == 2)
    cluster.produce([tweet(author, pushed[2]["tweet_id"], kind="tweet_delete")])
    body = wait_timeline(worker, reader, lambda b: tweet_ids(b) == [pulled[2]["tweet_id"]])

    flush_redis(redis_url)
    body = wait_timeline(worker, reader, lambda b: True)
    assert body["rebuilt"] is True
    assert tweet_ids(body) == [pulled[2]["tweet_id"]]
    newer = tweet(author)
    cluster.produce([newer])
    body = wait_timeline(worker, reader, lambda b: len(b["items"]) == 2)
    assert tweet_ids(body) == [newer[2]["tweet_id"], pulled[2]["tweet_id"]]


def test_status_codes_and_posting(empty_broker: str, cluster: Cluster) -> None:
    # Mid-rotation: tokens of the secret being rotated out still verify.
    worker = cluster.start_worker(HOMEMIXER_READ_RATE="5", HOMEMIXER_SECRET=f"{SECRET},old-secret")
    assert worker.get("/timelines/1")[0] == 401
    assert worker.get("/timelines/1", {"Authorization": "Bearer forged.1.x"})[0] == 401
    forged = mint_token("not-the-secret", 1)
    assert worker.get("/timelines/1", {"Authorization": f"Bearer {forged}"})[0] == 401
    expired = mint_token(SECRET, 1, ttl_s=60, now_s=time.time() - 61)
    status, body = worker.get("/timelines/1", {"Authorization": f"Bearer {expired}"})
    assert status == 401 and "expired" in json.loads(body)["error"]
    rotated = mint_token("old-secret", 2)
    assert worker.get("/timelines/2", {"Authorization": f"Bearer {rotated}"})[0] == 200
    token = mint_token(SECRET, 1)
    assert worker.get("/timelines/2", {"Authorization": f"Bearer {token}"})[0] == 403
    assert worker.get("/timelines/1?limit=0", {"Authorization": f"Bearer {token}"})[0] == 400
    assert worker.get("/timelines/1?limit=201", {"Authorization": f"Bearer {token}"})[0] == 400
    assert worker.get("/timelines/1?mode=sideways", {"Authorization": f"Bearer {token}"})[0] == 400

    def post(body: bytes, user: int = 9) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            worker.url + "/tweets",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {mint_token(SECRET, user)}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    assert post(b'{"text": ""}')[0] == 400
    assert post(json.dumps({"text": "x" * 281}).encode())[0] == 400
    status, created = post(b'{"text": "first post"}')
    assert status == 201
    body = wait_timeline(worker, 9, lambda b: tweet_ids(b) == [created["tweet_id"]])
    assert body["items"][0]["text"] == "first post" and body["items"][0]["author_id"] == 9

    statuses = [get_timeline(worker, 1)[0] for _ in range(6)]
    assert statuses[-1] == 429
    status, body = worker.get("/timelines/1", {"Authorization": f"Bearer {token}"})
    assert status == 429


def test_a_tweet_racing_its_authors_new_follow_reaches_the_follower(
    empty_broker: str, cluster: Cluster
) -> None:
    """A follow's two sides and the author's tweet reach the fanout node in any order: each
    follower's timeline, materialised before, ends up with the tweet whichever comes first."""
    worker = cluster.start_worker()
    pairs = [(100 + i, 200 + i) for i in range(30)]  # (follower, author)
    cluster.produce([activity(follower) for follower, _ in pairs])
    for follower, _ in pairs:
        wait_timeline(worker, follower, lambda b: b["items"] == [])
    tweets = {follower: tweet(author) for follower, author in pairs}
    cluster.produce(
        [
            message
            for follower, author in pairs
            for message in (graph("follow", follower, author), tweets[follower])
        ]
    )
    for follower, _ in pairs:
        wanted = [tweets[follower][2]["tweet_id"]]
        wait_timeline(worker, follower, lambda b, wanted=wanted: tweet_ids(b) == wanted)


def test_a_batch_redis_refuses_is_retried_until_redis_takes_it(
    empty_broker: str, cluster: Cluster, redis_url: str
) -> None:
    """Redis refusing writes (out of memory, not unreachable) fails fanout's batches; each is
    retried, not skipped, so the tweet fanned out meanwhile arrives once Redis takes writes."""
    if on_redis_cluster():
        pytest.skip("sets maxmemory on the one Redis")
    worker = cluster.start_worker()
    reader, author = 1, 2
    first = tweet(author)
    cluster.produce([activity(reader), graph("follow", reader, author)])
    wait_timeline(worker, reader, lambda b: True)
    cluster.produce([first])
    wait_timeline(worker, reader, lambda b: tweet_ids(b) == [first[2]["tweet_id"]])
    redis = sync_redis_client(redis_url)
    redis.config_set("maxmemory", 1)  # every write answers OOM
    try:
        during = tweet(author)
        cluster.produce([during])
        time.sleep(4)
    finally:
        redis.config_set("maxmemory", 0)
    wait_timeline(
        worker, reader, lambda b: tweet_ids(b) == [during[2]["tweet_id"], first[2]["tweet_id"]], timeout=60
    )
    assert worker.proc.poll() is None, "the worker lived through it"
