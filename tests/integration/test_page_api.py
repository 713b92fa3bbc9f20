"""What the page at `GET /` uses beyond the contract's reads: ranked reads that record nothing
(`record=0`), the buttons' endpoints that publish events, and the stream of new-item notices."""

from __future__ import annotations

import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import orjson

from streams.http.auth import mint_token
from tests.harness import Cluster, WorkerProcess, sync_redis_client
from tests.integration.test_timelines import SECRET, activity, get_timeline, graph, tweet, wait_timeline


def test_a_background_ranked_refresh_records_nothing_and_an_explicit_read_does(
    empty_broker: str, cluster: Cluster
) -> None:
    worker = cluster.start_worker()
    viewer, friend = 21, 22
    cluster.produce([activity(viewer), graph("follow", viewer, friend)])
    assert get_timeline(worker, viewer)[0] == 200  # materialise the home timeline
    posts = [tweet(friend) for _ in range(3)]
    cluster.produce(posts)
    deadline = time.monotonic() + 30
    while len((body := get_timeline(worker, viewer, mode="ranked", record=0)[1])["items"]) < len(posts):
        assert time.monotonic() < deadline, f"the tweets never reached the ranked page: {body}"
        time.sleep(0.3)
    bucket = body["bucket"]
    store = sync_redis_client(cluster.redis_url)

    def counts() -> tuple[float, dict[bytes, bytes], int]:
        served = worker.metric("homemixer_ab_served", bucket=bucket)
        return (
            served,
            store.hgetall(cluster.keys.adaptation_key(bucket)),
            store.zcard(cluster.keys.served_key(viewer)),
        )

    before = counts()
    assert before[0] == 0 and before[2] == 0, "record=0 reads were recorded as served"
    for _ in range(3):
        status, refreshed = get_timeline(worker, viewer, mode="ranked", record=0)
        assert status == 200 and len(refreshed["items"]) == len(posts), refreshed
    assert counts() == before

    status, explicit = get_timeline(worker, viewer, mode="ranked")
    assert status == 200 and len(explicit["items"]) == len(posts), explicit
    served, arms, in_served_set = counts()
    assert served == len(posts) and in_served_set == len(posts)
    assert arms != before[1]


def post(
    worker: WorkerProcess, path: str, user: int | None, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if user is not None:
        headers["Authorization"] = f"Bearer {mint_token(SECRET, user)}"
    request = urllib.request.Request(
        worker.url + path, data=orjson.dumps(body), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def stream_events(worker: WorkerProcess, user: int, out: queue.Queue[tuple[str, dict[str, Any]]]) -> None:
    """Reads the new-items stream as the page does (the token in the header), into `out`."""
    request = urllib.request.Request(
        f"{worker.url}/timelines/{user}/events",
        headers={"Authorization": f"Bearer {mint_token(SECRET, user)}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        event = ""
        for line in response:
            text = line.decode().rstrip("\n")
            if text.startswith("event: "):
                event = text[len("event: ") :]
            elif text.startswith("data: "):
                out.put((event, orjson.loads(text[len("data: ") :])))


def test_buttons_publish_contract_events_and_the_stream_announces_new_items(
    empty_broker: str, cluster: Cluster
) -> None:
    worker = cluster.start_worker(HOMEMIXER_ACTION_RATE="6")
    viewer, author = 31, 32
    cluster.produce([activity(viewer)])
    assert get_timeline(worker, viewer)[0] == 200
    theirs = tweet(author)
    cluster.produce([theirs])
    tweet_id = theirs[2]["tweet_id"]
    # A follow merges in the tweets the author's list has: wait until it has this one (the author's
    # own timeline, rebuilt from that list, shows it), or the follow may come first and miss it.
    wait_timeline(worker, author, lambda body: len(body["items"]) == 1)

    events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    threading.Thread(target=stream_events, args=(worker, viewer, events), daemon=True).start()
    assert events.get(timeout=20) == ("new", {"count": 0, "newest_id_str": None})

    # Following merges the author's tweets in; the stream says one new item arrived.
    assert post(worker, "/relationships", viewer, {"type": "follow", "user_id": author})[0] == 202
    assert events.get(timeout=30) == ("new", {"count": 1, "newest_id_str": str(tweet_id)})
    # The stream counted the tweet, so the tweet store has it: the like finds its author.
    assert post(worker, "/engagements", viewer, {"type": "like", "tweet_id": tweet_id})[0] == 202
    assert post(worker, "/relationships", viewer, {"type": "mute", "user_id": author})[0] == 202

    status, refused = post(worker, "/engagements", viewer, {"type": "like", "tweet_id": 12345})
    assert status == 404 and "12345" in refused["error"]
    assert post(worker, "/engagements", None, {"type": "like", "tweet_id": tweet_id})[0] == 401
    assert post(worker, "/engagements", viewer, {"type": "wink", "tweet_id": tweet_id})[0] == 400
    # Refused requests count against the limit too (6 a minute here, so the 6th is the last one
    # taken, or the 7th if a token refilled meanwhile); they publish nothing.
    statuses = [post(worker, "/relationships", viewer, {"type": "mute", "user_id": viewer}) for _ in range(4)]
    codes = [s for s, _ in statuses]
    assert codes in ([400, 429, 429, 429], [400, 400, 429, 429]), statuses
    assert "themselves" in statuses[0][1]["error"] and "retry" in statuses[-1][1]["error"]

    graph_events = cluster.read("social_graph_events", lambda got: len(got) >= 2)
    assert [(e["type"], e["src_user_id"], e["dst_user_id"]) for e in graph_events] == [
        ("follow", viewer, author),
        ("mute", viewer, author),
    ]
    likes = cluster.read("engagement_events", lambda got: len(got) >= 1)
    assert [(e["type"], e["user_id"], e["tweet_id"], e["author_id"]) for e in likes] == [
        ("like", viewer, tweet_id, author)
    ]
    # The pipeline applies every one of them: none is dead-lettered.
    for topic, count in (("social_graph_events", 2), ("engagement_events", 1)):
        deadline = time.monotonic() + 30
        while worker.metric("homemixer_messages_total", topic=topic, outcome="applied") < count:
            assert time.monotonic() < deadline, f"the {topic} events were never applied"
            time.sleep(0.3)
        assert worker.metric("homemixer_messages_total", topic=topic, outcome="dead_letter") == 0
