"""Timeline reads through HTTP as a load generator drives them, beside `/healthz` on the same server.

    python -m bench.bench_reads [--seconds S] [--workers N]

Starts its own broker (Tansu, or Apache Kafka with HOMEMIXER_TEST_BROKER=kafka), Redis and one
worker, and builds the graph of issue 16 through the contract's topics: 2,000 users, each
following 30 of 200 authors (20 tweets each, 4,000 in all) and the same 5 celebrities (40 tweets
each, pulled on read: their 2,000 followers are over the threshold of 1,000). The 200 readers'
timelines are materialised by one read each. Then, each against `GET /healthz` in the same run:

1. Closed loop: `wrk -t1 -c32` (Debian's wrk; a Lua script rotates the 200 readers and their
   tokens) for `/healthz`, `mode=latest` and `mode=ranked` (`record=0`, so a load of reads does
   not teach the bandit), `limit=50`: requests/s and wrk's p50/p99/p99.9.
2. Open loop at fixed rates (asyncio + aiohttp from this process, request i due at start + i/rate):
   latest at 2,000/s, ranked at 200/s, `/healthz` at 2,000/s; p50/p99 of what was answered.
3. With N workers (default 2, one per core): a second worker joins, and one wrk per worker's port
   reads at once; requests/s summed.

Every read the bench checks (one per reader before the load) must hold 50 items, celebrities'
tweets among them.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench.bench_timelines import paced, pct
from streams.dev.embedded import start_redis
from streams.http.auth import mint_token
from tests.brokers import broker_kind, start_test_broker
from tests.harness import Cluster, WorkerProcess
from tests.integration.test_timelines import activity, get_timeline, graph, tweet

USERS = 2000
AUTHORS = range(3001, 3201)
FOLLOWS_PER_USER = 30
TWEETS_PER_AUTHOR = 20
CELEBRITIES = range(4001, 4006)
TWEETS_PER_CELEBRITY = 40
CELEBRITY_THRESHOLD = 1000
READERS = range(1, 201)
LIMIT = 50
SECRET = "test-secret"  # the harness's
WRK_CONNECTIONS = 32
SETTLE_TIMEOUT_S = 300.0

WRK_SCRIPT = """
local requests = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do
    local path, token = line:match("(%S+) (%S+)")
    requests[#requests + 1] = wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
  end
end
request = function()
  i = i + 1
  return requests[(i % #requests) + 1]
end
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %d, "duration_us": %d, "errors": %d, "non2xx": %d, ' ..
    '"p50": %d, "p99": %d, "p999": %d}\\n', summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"""


def say(msg: str) -> None:
    print(msg, flush=True)


def seed(cluster: Cluster, rng: random.Random) -> None:
    follows = {u: rng.sample(AUTHORS, FOLLOWS_PER_USER) + list(CELEBRITIES) for u in range(1, USERS + 1)}
    cluster.produce(activity(u) for u in follows)
    cluster.produce(graph("follow", u, a) for u, authors in follows.items() for a in authors)
    r = redis.Redis.from_url(cluster.redis_url)
    keys = cluster.keys
    wait_for(
        "the follow graph in Redis",
        lambda: sum(r.scard(keys.following_key(u)) for u in READERS) == len(READERS) * len(follows[1]),
    )
    posts = [tweet(a) for a in AUTHORS for _ in range(TWEETS_PER_AUTHOR)]
    posts += [tweet(c) for c in CELEBRITIES for _ in range(TWEETS_PER_CELEBRITY)]
    cluster.produce(posts)
    wait_for(
        "every tweet in its author's list",
        lambda: sum(r.zcard(keys.authored_key(a)) for a in [*AUTHORS, *CELEBRITIES]) == len(posts),
    )


def wait_for(what: str, done: Any) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.5)


def check_pages(worker: WorkerProcess) -> None:
    """One read per reader (the first materialises its timeline): 50 items, pulled ones among them."""
    for user in READERS:
        for mode in ("latest", "ranked"):
            status, body = get_timeline(worker, user, limit=LIMIT, mode=mode, record=0)
            assert status == 200 and len(body["items"]) == LIMIT, (user, mode, status)
            if mode == "latest":
                assert any(item["source"] == "pull" for item in body["items"]), user


def request_lines(path: str) -> list[str]:
    lines = []
    for user in READERS:
        token = mint_token(SECRET, user)
        lines.append(f"{path.format(user=user)} {token}")
    return lines


PATHS = {
    "healthz": "/healthz",
    "latest": f"/timelines/{{user}}?limit={LIMIT}",
    "ranked": f"/timelines/{{user}}?limit={LIMIT}&mode=ranked&record=0",
}


def wrk(root: Path, urls: list[str], label: str, seconds: float) -> dict[str, float]:
    """Closed loop: one wrk per url (each a worker's port), at once; requests/s summed."""
    script = root / "rotate.lua"
    script.write_text(WRK_SCRIPT)
    lines = root / f"{label}.txt"
    lines.write_text("\n".join(request_lines(PATHS[label])) + "\n")
    connections = max(1, WRK_CONNECTIONS // len(urls))
    procs = [
        subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{round(seconds)}s",
                "-s",
                str(script),
                url,
                "--",
                str(lines),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        results.append(json.loads(next(line for line in out.splitlines() if line.startswith("{"))))
    rate = sum(r["requests"] / (r["duration_us"] / 1e6) for r in results)
    failed = sum(r["errors"] + r["non2xx"] for r in results)
    return {
        "rate": rate,
        "failed": failed,
        "p50": max(r["p50"] for r in results) / 1000,
        "p99": max(r["p99"] for r in results) / 1000,
        "p999": max(r["p999"] for r in results) / 1000,
    }


def open_loop(url: str, label: str, rate: float, seconds: float) -> dict[str, Any]:
    paths = []
    for line in request_lines(PATHS[label]):
        path, token = line.split()
        paths.append((path, {"Authorization": f"Bearer {token}"}))
    return paced(url, paths, rate, seconds, 2.0, 256)


def redis_busy(r: redis.Redis) -> float:
    """Redis's own CPU seconds so far: what one single-threaded Redis can give the reads."""
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def closed_phase(
    root: Path, urls: list[str], seconds: float, title: str, r: redis.Redis
) -> dict[str, dict[str, float]]:
    say(f"\n{title}: wrk -t1 -c{WRK_CONNECTIONS // len(urls)} per worker, {seconds:.0f} s each")
    figures = {}
    for label in PATHS:
        busy = redis_busy(r)
        f = figures[label] = wrk(root, urls, label, seconds)
        f["redis_ms"] = (redis_busy(r) - busy) / (f["rate"] * round(seconds)) * 1000
    base = figures["healthz"]["rate"]
    for label, f in figures.items():
        say(
            f"  {label:>8}: {f['rate']:8.0f} req/s ({f['rate'] / base:.2f}x healthz)  p50 {f['p50']:6.2f} ms"
            f"  p99 {f['p99']:6.2f} ms  p99.9 {f['p999']:6.2f} ms  failed {f['failed']:.0f}"
            f"  Redis CPU {f['redis_ms']:.3f} ms/request"
        )
    return figures


def main(seconds: float, workers: int) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    root = Path(tempfile.mkdtemp(prefix="bench-reads-"))
    broker, redis_server = start_test_broker(broker_kind(), root), start_redis()
    env = {"HOMEMIXER_READ_RATE": "1000000", "HOMEMIXER_CELEBRITY_THRESHOLD": str(CELEBRITY_THRESHOLD)}
    try:
        with Cluster(f"127.0.0.1:{broker.port}", f"redis://127.0.0.1:{redis_server.port}/0", root) as cluster:
            first = cluster.start_worker(**env)
            say(f"seeding {USERS} users, {len(AUTHORS)} authors, {len(CELEBRITIES)} celebrities ...")
            seed(cluster, random.Random(16))
            check_pages(first)
            r = redis.Redis.from_url(cluster.redis_url)
            closed_phase(root, [first.url], seconds, "1 worker, closed loop", r)
            say(f"\n1 worker, open loop ({seconds:.0f} s after 2 s of warm-up)")
            for label, rate in (("healthz", 2000), ("latest", 2000), ("ranked", 200)):
                run = open_loop(first.url, label, rate, seconds)
                lat = [x * 1000 for x in run["latencies"]]
                say(
                    f"  {label:>8} at {rate}/s: achieved {run['achieved']:7.0f}/s"
                    f"  p50 {pct(lat, 50):6.2f} ms  p99 {pct(lat, 99):6.2f} ms"
                    f"  statuses {run['statuses']}  skipped {run['skipped']}"
                )
            if workers > 1:
                others = [cluster.start_worker(f"w{i + 1}", **env) for i in range(1, workers)]
                urls = [w.url for w in [first, *others]]
                closed_phase(root, urls, seconds, f"{workers} workers, closed loop", r)
    finally:
        broker.stop()
        redis_server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load phase")
    parser.add_argument("--workers", type=int, default=2, help="workers in the last phase")
    args = parser.parse_args()
    main(args.seconds, args.workers)
