"""A Redis Cluster master lost and back empty (run with `HOMEMIXER_TEST_REDIS=cluster`): reads
answer 503 with `Retry-After` while its slots are down, never 500; once it is back, the worker
writes the lost part of the Redis view again and the timelines are what the rules say, including
a tweet fanned out during the outage."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

import pytest
import redis as sync_redis
from redis.crc import key_slot

from streams.http.auth import mint_token
from streams.serving.connection import connect, shard_tags
from tests.harness import Cluster, WorkerProcess, on_redis_cluster
from tests.integration.test_timelines import activity, graph, tweet, tweet_ids, wait_timeline
from tests.redis_cluster import MASTERS, RedisClusterServers

pytestmark = pytest.mark.skipif(not on_redis_cluster(), reason="needs HOMEMIXER_TEST_REDIS=cluster")

SECRET = "test-secret"


def read(worker: WorkerProcess, user: int) -> tuple[int, str | None]:
    """A latest read's status and its Retry-After header."""
    request = urllib.request.Request(
        f"{worker.url}/timelines/{user}?limit=50",
        headers={"Authorization": f"Bearer {mint_token(SECRET, user)}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.headers.get("Retry-After")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Retry-After")


def master_of(servers: RedisClusterServers, key: str) -> int:
    """Which of the servers holds `key`'s hash slot."""
    slot = key_slot(key.encode())
    for start, end, *nodes in sync_redis.Redis(port=servers.ports[0]).execute_command("CLUSTER SLOTS"):
        if start <= slot <= end:
            return servers.ports.index(int(nodes[0][1]))
    raise AssertionError(f"no master serves slot {slot}")


def test_the_shard_tags_name_one_slot_of_every_master(redis_cluster: RedisClusterServers) -> None:
    async def tags() -> list[str]:
        client = connect(redis_cluster.url, cluster=True, max_connections=4, wait_s=5.0)
        try:
            return await shard_tags(client)
        finally:
            await client.aclose()

    found = asyncio.run(tags())
    assert sorted(master_of(redis_cluster, tag) for tag in found) == list(range(MASTERS))


def test_a_lost_master_answers_503_then_its_part_of_the_view_comes_back(
    empty_broker: str, cluster: Cluster, redis_cluster: RedisClusterServers
) -> None:
    worker = cluster.start_worker()
    author = 1
    master = {u: master_of(redis_cluster, cluster.keys.following_key(u)) for u in range(2, 100)}
    # The lost master holds the reader's keys, but not the activity index (which would make every
    # user inactive, so that every read rebuilds); a second reader's keys are on another master:
    # its timeline outlives the outage, so the tweet fanned out during it must still reach it.
    active = master_of(redis_cluster, cluster.keys.active)
    reader = next(u for u in master if master[u] != active)
    lost = master[reader]
    survivor = next(u for u in master if master[u] != lost)
    cluster.produce(
        [activity(u) for u in (reader, survivor)] + [graph("follow", u, author) for u in (reader, survivor)]
    )
    # Both follows applied (their counts out) before the author tweets: this test is about the
    # outage, not about a tweet that races a follow.
    cluster.read(
        "real_time_features",
        lambda values: (
            {int(v["entity_id"]) for v in values if v["features"].get("social.following") == 1}
            >= {reader, survivor}
        ),
    )
    before = tweet(author)
    cluster.produce([before])
    for u in (reader, survivor):
        wait_timeline(worker, u, lambda b: tweet_ids(b) == [before[2]["tweet_id"]])

    redis_cluster.kill(lost)
    try:
        statuses: list[int] = []
        deadline = time.monotonic() + 30
        while not statuses or statuses[-1] != 503:
            status, retry_after = read(worker, reader)
            statuses.append(status)
            assert status in (200, 503), f"a read during the outage answered {status}"
            if status == 503:
                assert retry_after is not None and int(retry_after) >= 1
            assert time.monotonic() < deadline, f"reads never answered 503: {statuses}"
            time.sleep(0.2)
        during = tweet(author)
        cluster.produce([during])
        time.sleep(2)  # the worker's fanout of `during` meets the outage
    finally:
        redis_cluster.restart(lost)

    both = [during[2]["tweet_id"], before[2]["tweet_id"]]
    # The reader's timeline, lost with the master, is rebuilt (before or after `during` is fanned
    # out again); the survivor's was kept and had `during` pushed once the master was back.
    wait_timeline(worker, reader, lambda b: tweet_ids(b) == both, timeout=60)
    kept_view = wait_timeline(worker, survivor, lambda b: tweet_ids(b) == both, timeout=60)
    assert [item["source"] for item in kept_view["items"]] == ["push", "push"]
    after = tweet(author)
    cluster.produce([after])
    for u in (reader, survivor):
        body = wait_timeline(worker, u, lambda b: len(b["items"]) == 3)
        assert tweet_ids(body) == [after[2]["tweet_id"], *both]
    assert worker.proc.poll() is None, "the worker lived through the outage"
