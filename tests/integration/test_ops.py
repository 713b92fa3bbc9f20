"""`homemixer reset` and `homemixer feeds`, run as an operator runs them, against a live worker's
broker and Redis."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

from streams.ingest.schemas import SINK_TOPICS, SOURCE_TOPICS
from streams.serving.keys import RedisKeys, app_pattern
from tests.harness import Cluster, sync_redis_client
from tests.integration.test_timelines import activity, graph, tweet, tweet_ids, wait_timeline


def homemixer(cluster: Cluster, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = cluster.env(HOMEMIXER_DATA_DIR=str(data_dir))
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def timeline(cluster: Cluster, user: int) -> list[int]:
    held = sync_redis_client(cluster.redis_url).zrevrange(cluster.keys.timeline_key(user), 0, -1)
    return [int(t) for t in held if int(t) > 0]


def wait_for(check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def seed(cluster: Cluster) -> tuple[int, list[int]]:
    """A reader following two authors who tweet; the reader's expected timeline, newest first."""
    reader, a, b = 11, 12, 13
    cluster.produce([activity(reader), graph("follow", reader, a), graph("follow", reader, b)])
    posts = [tweet(a), tweet(b), tweet(a)]
    cluster.produce(posts)
    store = sync_redis_client(cluster.redis_url)
    # The first read materialises the timeline: it must see the whole graph and every tweet.
    wait_for(
        lambda: (
            store.scard(cluster.keys.following_key(reader)) == 2
            and store.zcard(cluster.keys.authored_key(a)) + store.zcard(cluster.keys.authored_key(b)) == 3
        )
    )
    return reader, sorted((p[2]["tweet_id"] for p in posts), reverse=True)


def test_reset_deletes_the_apps_state_only_and_a_new_worker_reprocesses_it(
    empty_broker: str, cluster: Cluster
) -> None:
    worker = cluster.start_worker()
    reader, expected = seed(cluster)
    # A timeline is materialised by its first read; fanout then keeps it.
    wait_timeline(worker, reader, lambda body: tweet_ids(body) == expected)
    assert timeline(cluster, reader) == expected
    store = sync_redis_client(cluster.redis_url)
    other = RedisKeys("other-app")
    store.zadd(other.timeline_key(reader), {"5": 5})

    refused = homemixer(cluster, worker.data_dir, "reset", "--yes")
    assert refused.returncode != 0 and "still running" in refused.stderr, refused.stderr
    worker.stop()

    done = homemixer(cluster, worker.data_dir, "reset", "--yes")
    assert done.returncode == 0, done.stderr
    assert "Kafka topics" in done.stdout and "Redis keys" in done.stdout
    assert not list(store.scan_iter(match=app_pattern(cluster.app_id)))
    assert store.zrange(other.timeline_key(reader), 0, -1) == [b"5"], "another app's keys stay"
    assert not worker.data_dir.exists()
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    topics = set(admin.list_topics(timeout=10).topics)
    assert not {t for t in topics if t.startswith(f"{cluster.app_id}-")}
    assert set(SOURCE_TOPICS) <= topics and set(SINK_TOPICS) <= topics

    again = cluster.start_worker("w2")
    wait_timeline(again, reader, lambda body: tweet_ids(body) == expected)
    assert again.metric("homemixer_messages_total", topic="content_events", outcome="applied") == 3


def test_feeds_clear_and_build_one_user_and_all(empty_broker: str, cluster: Cluster) -> None:
    worker = cluster.start_worker()
    reader, expected = seed(cluster)
    # A timeline is materialised by its first read; fanout then keeps it.
    wait_timeline(worker, reader, lambda body: tweet_ids(body) == expected)
    assert timeline(cluster, reader) == expected

    usage = homemixer(cluster, worker.data_dir, "feeds", "build")
    assert usage.returncode == 2 and "exactly one of --user ID or --all" in usage.stderr
    both = homemixer(cluster, worker.data_dir, "feeds", "clear", "--user", "1", "--all")
    assert both.returncode == 2

    cleared = homemixer(cluster, worker.data_dir, "feeds", "clear", "--user", str(reader))
    assert cleared.returncode == 0 and "cleared 1 timelines" in cleared.stdout
    store = sync_redis_client(cluster.redis_url)
    assert not store.exists(cluster.keys.timeline_key(reader))
    built = homemixer(cluster, worker.data_dir, "feeds", "build", "--user", str(reader))
    assert built.returncode == 0, built.stderr
    assert timeline(cluster, reader) == expected

    everyone = homemixer(cluster, worker.data_dir, "feeds", "clear", "--all")
    assert everyone.returncode == 0 and not list(store.scan_iter(match=cluster.keys.timeline_pattern))
    rebuilt = homemixer(cluster, worker.data_dir, "feeds", "build", "--all")
    assert rebuilt.returncode == 0 and "/" in rebuilt.stdout
    assert timeline(cluster, reader) == expected
