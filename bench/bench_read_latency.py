"""Ranked against latest read latency through HTTP on one worker: 50 items from 500 candidates.

    python -m bench.bench_read_latency [REQUESTS]

Starts its own broker (Tansu, or Apache Kafka with HOMEMIXER_TEST_BROKER=kafka), Redis and one
worker; a viewer follows 25 authors with 20 tweets each (500 pushed candidates, with engagements so
the features are not empty), then times sequential
`GET /timelines/{id}?limit=50` in `mode=ranked` and `mode=latest`, interleaved, from this process;
then the worker's CPU time per read of each mode (REQUESTS more reads of each).

The viewer is in the `control` bucket. A second viewer with the same follows is in the learning
(`adaptive`) bucket and has viewer feedback on every author (`ranked+feedback`): what its read
adds, the feedback's fields in the hydration script and the lifts, is timed too. Its feedback is
written straight into Redis as the calibration fitter would have learnt it.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
from redis.asyncio import Redis

from streams.dev.embedded import start_redis
from streams.mixer.adaptation import bucket_of
from streams.mixer.viewer_feedback import Evidence
from streams.ranked.feedback_store import queue_learning
from streams.serving.scripts import execute
from tests.brokers import broker_kind, start_test_broker
from tests.harness import Cluster
from tests.integration.test_ranked import engagement
from tests.integration.test_timelines import activity, get_timeline, graph, tweet

VIEWER = 1  # control bucket
LEARNING_VIEWER = 27  # adaptive bucket
AUTHORS = range(2, 27)
TWEETS_PER_AUTHOR = 20


# label -> (viewer, mode); the learning viewer's read last, so that its page is the one checked.
READS = {
    "latest": (VIEWER, "latest"),
    "ranked": (VIEWER, "ranked"),
    "ranked+feedback": (LEARNING_VIEWER, "ranked"),
}


async def learn_feedback(redis_url: str) -> None:
    """The learning viewer's feedback on every author: some engaged more than predicted, some less."""
    redis = Redis.from_url(redis_url)
    try:
        pipe = redis.pipeline(transaction=True)
        seen = {a: Evidence(engaged=float(a % 4), expected=1.5) for a in AUTHORS}
        queue_learning(pipe, LEARNING_VIEWER, int(time.time() * 1000), seen)
        await execute(pipe)
    finally:
        await redis.aclose()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def main(requests: int) -> None:
    broker_root = Path(tempfile.mkdtemp(prefix="bench-read-broker-"))
    broker, redis = start_test_broker(broker_kind(), broker_root), start_redis()
    try:
        with (
            tempfile.TemporaryDirectory() as root,
            Cluster(f"127.0.0.1:{broker.port}", f"redis://127.0.0.1:{redis.port}/0", Path(root)) as cluster,
        ):
            worker = cluster.start_worker(HOMEMIXER_READ_RATE="1000000")
            assert (bucket_of(VIEWER), bucket_of(LEARNING_VIEWER)) == ("control", "adaptive")
            viewers = (VIEWER, LEARNING_VIEWER)
            cluster.produce(
                [activity(v) for v in viewers] + [graph("follow", v, a) for v in viewers for a in AUTHORS]
            )
            time.sleep(2)
            assert all(get_timeline(worker, v)[0] == 200 for v in viewers)
            asyncio.run(learn_feedback(cluster.redis_url))
            posts = [tweet(a) for a in AUTHORS for _ in range(TWEETS_PER_AUTHOR)]
            cluster.produce(posts)
            cluster.produce(
                engagement(100 + i % 50, p[2]["tweet_id"], p[2]["author_id"], kind)
                for i, p in enumerate(posts)
                for kind in ("impression", "like")
            )
            deadline = time.monotonic() + 60
            while any(len(get_timeline(worker, v, limit=200)[1]["items"]) < 200 for v in viewers):
                assert time.monotonic() < deadline, "the 500 tweets never reached the timeline"
                time.sleep(0.5)
            time.sleep(2)
            print(f"viewer has {len(posts)} pushed candidates; timing {requests} reads of each mode")
            times: dict[str, list[float]] = {label: [] for label in READS}
            for i in range(requests + 20):
                for label, (viewer, mode) in READS.items():
                    start = time.perf_counter()
                    status, body = get_timeline(worker, viewer, mode=mode, limit=50)
                    elapsed = (time.perf_counter() - start) * 1000
                    assert status == 200 and len(body["items"]) == 50, (label, status)
                    if i >= 20:  # warm-up
                        times[label].append(elapsed)
            lifted = sum("your engagement with this author" in item["reason"] for item in body["items"])
            assert lifted == 50, f"only {lifted} of the learning viewer's items carry a feedback lift"
            for label, values in times.items():
                print(
                    f"{label:>15}: p50 {pct(values, 50):6.2f} ms  p99 {pct(values, 99):6.2f} ms  "
                    f"mean {statistics.mean(values):6.2f} ms  (n={len(values)})"
                )
            # Wall time moves with whatever else the machine runs; the worker's own CPU time per read
            # much less: it is what compares two versions of the read path.
            process = psutil.Process(worker.proc.pid)
            for label, (viewer, mode) in READS.items():
                before = process.cpu_times()
                for _ in range(requests):
                    get_timeline(worker, viewer, mode=mode, limit=50)
                after = process.cpu_times()
                used = (after.user - before.user) + (after.system - before.system)
                print(f"{label:>15}: worker CPU {used / requests * 1000:6.2f} ms per read (n={requests})")
            ratio = pct(times["ranked"], 99) / pct(times["latest"], 99)
            verdict = "met" if pct(times["ranked"], 99) <= 20 else "NOT met"
            print(f"ranked/latest p99: {ratio:.2f}x; target ranked p99 <= 20 ms: {verdict}")
    finally:
        broker.stop()
        redis.stop()
        shutil.rmtree(broker_root, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
