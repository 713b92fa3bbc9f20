"""What the page at `GET /` uses beyond the contract's reads: ranked reads that record nothing
(`record=0`), the buttons' endpoints that publish events, and the stream of new-item notices."""

from __future__ import annotations

import time

import redis

from streams.serving.keys import adaptation_key, served_key
from tests.harness import Cluster
from tests.integration.test_timelines import activity, get_timeline, graph, tweet


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
    store = redis.Redis.from_url(cluster.redis_url)

    def counts() -> tuple[float, dict[bytes, bytes], int]:
        served = worker.metric("homemixer_ab_served", bucket=bucket)
        return served, store.hgetall(adaptation_key(bucket)), store.zcard(served_key(viewer))

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
