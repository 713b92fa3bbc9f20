"""Ranked against latest read latency through HTTP on one worker: 50 items from 500 candidates.

    python -m bench.bench_read_latency [REQUESTS]

Starts its own broker, Redis and one worker; a viewer follows 25 authors with 20 tweets each (500
pushed candidates, with engagements so the features are not empty), then times sequential
`GET /timelines/{id}?limit=50` in `mode=ranked` and `mode=latest`, interleaved, from this process;
then the worker's CPU time per read of each mode (REQUESTS more reads of each).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

from streams.embedded import start_broker, start_redis
from tests.harness import Cluster
from tests.integration.test_ranked import engagement
from tests.integration.test_timelines import activity, get_timeline, graph, tweet

VIEWER = 1
AUTHORS = range(2, 27)
TWEETS_PER_AUTHOR = 20


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def main(requests: int) -> None:
    broker, redis = start_broker(), start_redis()
    try:
        with (
            tempfile.TemporaryDirectory() as root,
            Cluster(f"127.0.0.1:{broker.port}", f"redis://127.0.0.1:{redis.port}/0", Path(root)) as cluster,
        ):
            worker = cluster.start_worker(HOMEMIXER_READ_RATE="1000000")
            cluster.produce([activity(VIEWER)] + [graph("follow", VIEWER, a) for a in AUTHORS])
            time.sleep(2)
            assert get_timeline(worker, VIEWER)[0] == 200
            posts = [tweet(a) for a in AUTHORS for _ in range(TWEETS_PER_AUTHOR)]
            cluster.produce(posts)
            cluster.produce(
                engagement(100 + i % 50, p[2]["tweet_id"], p[2]["author_id"], kind)
                for i, p in enumerate(posts)
                for kind in ("impression", "like")
            )
            deadline = time.monotonic() + 60
            while len(get_timeline(worker, VIEWER, limit=200)[1]["items"]) < 200:
                assert time.monotonic() < deadline, "the 500 tweets never reached the timeline"
                time.sleep(0.5)
            time.sleep(2)
            print(f"viewer has {len(posts)} pushed candidates; timing {requests} reads of each mode")
            times: dict[str, list[float]] = {"ranked": [], "latest": []}
            for i in range(requests + 20):
                for mode in ("ranked", "latest"):
                    start = time.perf_counter()
                    status, body = get_timeline(worker, VIEWER, mode=mode, limit=50)
                    elapsed = (time.perf_counter() - start) * 1000
                    assert status == 200 and len(body["items"]) == 50, (mode, status)
                    if i >= 20:  # warm-up
                        times[mode].append(elapsed)
            for mode, values in times.items():
                print(
                    f"{mode:>7}: p50 {pct(values, 50):6.2f} ms  p99 {pct(values, 99):6.2f} ms  "
                    f"mean {statistics.mean(values):6.2f} ms  (n={len(values)})"
                )
            # Wall time moves with whatever else the machine runs; the worker's own CPU time per read
            # much less: it is what compares two versions of the read path.
            process = psutil.Process(worker.proc.pid)
            for mode in ("ranked", "latest"):
                before = process.cpu_times()
                for _ in range(requests):
                    get_timeline(worker, VIEWER, mode=mode, limit=50)
                after = process.cpu_times()
                used = (after.user - before.user) + (after.system - before.system)
                print(f"{mode:>7}: worker CPU {used / requests * 1000:6.2f} ms per read (n={requests})")
            ratio = pct(times["ranked"], 99) / pct(times["latest"], 99)
            verdict = "met" if pct(times["ranked"], 99) <= 20 else "NOT met"
            print(f"ranked/latest p99: {ratio:.2f}x; target ranked p99 <= 20 ms: {verdict}")
    finally:
        broker.stop()
        redis.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
