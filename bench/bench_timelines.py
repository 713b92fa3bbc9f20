"""Timelines end to end on one worker: fanout deliveries/s, read latency under load, freshness.

    python -m bench.bench_timelines [USERS]      (default 20000; about 5 minutes on 2 cores)

Starts its own broker (Tansu, or Apache Kafka with HOMEMIXER_TEST_BROKER=kafka), Redis and ONE
`homemixer worker` process (as `tests/harness.py`
does), feeds it the power-law follow graph of `streams.dev.demo.Workload` (20,000 users, 3
celebrities, about 108,000 follows) plus one `page_view` per user (so every follower is active),
waits until the parser counted every event and the worker's consumer group has committed every
internal graph message (`committed`), then materialises every user's home timeline with one
`GET /timelines/{user}` each (a rebuild: a timeline only receives pushes once it exists). Then,
each figure printed next to a baseline measured in the same run:

1. Fanout deliveries/s: N tweet_create events by the non-celebrity authors with at least 1,000
   followers, all produced at once; a delivery is one tweet into one materialised, active
   timeline (the author's own and each follower's). Every timeline holds only the sentinel before
   and no timeline receives more than its 800-entry cap, so "all delivered" is exact: the sum of
   ZCARD over all timelines equals the sentinels plus the expected deliveries (checked in Redis by
   a read-only Lua script every 0.5 s). Baseline: `redis-benchmark -P 64 -n 1000000 -r 1000000 -q
   -t zadd` on the same Redis. With `-r` redis-benchmark replaces `__rand_int__` in its ZADD
   (`ZADD myzset __rand_int__ element:__rand_int__`), so each ZADD inserts a new member into one
   growing sorted set; without `-r` every ZADD re-adds the same member, a no-op.
2. Read latency of `GET /timelines/{user}?limit=50` (users whose timelines hold >= 50 tweets) at
   2,000 requests/s, open loop, from a second process (asyncio + aiohttp, keep-alive, loopback);
   baseline: the same load against `GET /livez` (the web server, no work). Latency is from the
   request's start to its body read, in the client; the achieved rate is printed too.
3. Freshness: tweet_create events at 2,300/s for 20 s from a second process, authors drawn
   uniformly from all users (so fanout sizes follow the power-law follower counts); a tweet is
   visible when its id is in every eligible recipient's `{app}:tl:{user}` (author and followers;
   for a celebrity, whose tweets are pulled on read, in `{app}:au:{author}`). Measured by polling
   Redis from this process; the time is taken after the poll's reply (an upper bound, late by
   up to the 50 ms probe interval plus a 20 ms round). Each pending tweet's last recipient is
   probed at most every 50 ms and at most 40,000 tweets a second in all (oldest first, a quarter
   rotating over the rest), so a backlog cannot turn the poller into a load of its own; when a
   probe hits, every recipient of that tweet is checked.
   A tweet not visible when polling stops (20 s after the last one was produced) counts with the
   time it had waited, so percentiles are then lower bounds (printed with ">="). Before it, as
   context, the same at 500 tweets/s for 10 s.

Everything started here is stopped on exit, Ctrl-C or error.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
import redis
from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.dev.demo import Workload, produce
from streams.dev.embedded import free_port, start_redis, terminate
from streams.http.auth import mint_token
from streams.serving.keys import KEYS, TIMELINE_PREFIX, authored_key, timeline_key
from streams.snowflake import SnowflakeGenerator
from tests.brokers import RunningBroker, broker_kind, start_test_broker
from tests.harness import metric_value

USERS = 20_000
CELEBRITIES = 3
CELEBRITY_THRESHOLD = 10_000  # the default; set explicitly for the worker so the bench knows it
TIMELINE_MAX = 800  # the default cap, set explicitly too
PARTITIONS = 4
SECRET = "bench-secret"
# Phase 1: authors with at least this many followers tweet; each the same number of times,
# at most this many, and fewer if a follower of many of them would get more than TIMELINE_MAX.
FANOUT_MIN_FOLLOWERS = 1000
FANOUT_TWEETS_PER_AUTHOR = 80
FANOUT_TIMEOUT_S = 120.0
# One poll (SUM_ZCARD_LUA over ~17,000 timelines) costs Redis ~15-25 ms: polled every 50 ms it
# took a third of the Redis time the deliveries were measured against. Every 0.5 s it takes ~3%,
# and the end is known to within 0.5 s of a ~10-25 s phase.
FANOUT_POLL_S = 0.5
# Phase 2.
READ_RATE = 2000
READ_SECONDS = 10.0
READ_WARMUP_S = 2.0
# The client's cap on requests in flight. The worker's redis-py pool holds at most 100
# connections and raises MaxConnectionsError (a 500) past that, so a cap above ~100 measures
# that failure rather than latency (see RESULTS.md); 64 is what a proxy in front might allow.
READ_MAX_INFLIGHT = 64
# Service time without queueing: one request at a time, for this long, per endpoint.
UNLOADED_SECONDS = 3.0
READ_USERS = 2000
READ_LIMIT = 50
MATERIALISE_CONCURRENCY = 32
# Phase 3.
FRESH_RATE = 2300
FRESH_SECONDS = 20.0
FRESH_DRAIN_S = 20.0
# Context for the target: the same measurement first at a rate one worker keeps up with.
FRESH_LOW_RATE = 500
FRESH_LOW_SECONDS = 10.0
# The poller shares Redis and the 2 cores with the worker, so its work is bounded: each pending
# tweet is probed at most once per PROBE_INTERVAL_S (the resolution of a freshness figure), and at
# most PROBE_PER_S tweets a second in all. When a backlog exceeds that, three quarters of each
# round's probes go to the oldest pending tweets (the processing frontier) and a quarter rotate
# over the rest, so a tweet processed out of order is still seen within a few seconds.
PROBE_INTERVAL_S = 0.05
PROBE_PER_S = 40_000
FRESH_POLL_S = 0.02
CHECK_ARGS_PER_CALL = 20_000
# Setup.
WORKER_READY_TIMEOUT_S = 90.0
GRAPH_TIMEOUT_S = 300.0
GRAPH_MIN_RATE = 1000  # follows/s below which a bigger graph counts as stuck
BENCH_REQUESTS = 1_000_000
RATE = re.compile(r"([0-9.]+) requests per second")

# Read-only bench scripts (they touch only the keys passed to them).
SUM_ZCARD_LUA = """
local s = 0
local n = 0
for i = 1, #KEYS do
  local c = redis.call('ZCARD', KEYS[i])
  s = s + c
  if c > 0 then n = n + 1 end
end
return {s, n}
"""
PRESENT_LUA = """
local out = {}
for i = 1, #KEYS do
  if redis.call('ZSCORE', KEYS[i], ARGV[i]) then out[i] = 1 else out[i] = 0 end
end
return out
"""


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds a process ran, and seconds its threads were runnable but waiting for a CPU
    (Linux /proc schedstat, summed over threads): the second says how much other processes on
    the machine held it back."""
    ran = waited = 0.0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            fields = (task / "schedstat").read_text().split()
            ran += int(fields[0]) / 1e9
            waited += int(fields[1]) / 1e9
    except OSError:
        return float("nan"), float("nan")
    return ran, waited


# --------------------------------------------------------------------------------------------
# The load generators: run in a second process (spawned), asyncio + aiohttp on loopback.


async def _materialise(url: str, users: list[int], concurrency: int) -> dict[str, Any]:
    import aiohttp

    statuses: Counter[int] = Counter()
    queue = list(reversed(users))
    start = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            while queue:
                user = queue.pop()
                headers = {"Authorization": f"Bearer {mint_token(SECRET, user)}"}
                async with session.get(f"{url}/timelines/{user}?limit=1", headers=headers) as resp:
                    await resp.read()
                    statuses[resp.status] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"statuses": dict(statuses), "elapsed": time.perf_counter() - start}


def materialise(url: str, users: list[int], concurrency: int) -> dict[str, Any]:
    return asyncio.run(_materialise(url, users, concurrency))


async def _paced(
    url: str, paths: list[tuple[str, dict[str, str]]], rate: float, seconds: float, warmup: float, cap: int
) -> dict[str, Any]:
    """Open loop: request i is due at start + i/rate; skipped (counted) if `cap` are in flight."""
    import aiohttp

    total = int(rate * (warmup + seconds))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    inflight = 0
    max_inflight = 0
    skipped = 0
    done_times: list[float] = []
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=cap), timeout=timeout) as session:
        start = time.perf_counter()
        measure_from = start + warmup

        async def one(i: int) -> None:
            nonlocal inflight
            path, headers = paths[i % len(paths)]
            t0 = time.perf_counter()
            try:
                async with session.get(url + path, headers=headers) as resp:
                    await resp.read()
                    status = resp.status
            except Exception as exc:  # counted, never fatal: the figure says how many
                errors[type(exc).__name__] += 1
                status = -1
            t1 = time.perf_counter()
            inflight -= 1
            if t0 >= measure_from:
                statuses[status] += 1
                if status == 200:
                    latencies.append(t1 - t0)
                    done_times.append(t1)

        tasks = set()
        i = 0
        cpu0 = time.process_time()
        while i < total:
            due = min(total, int((time.perf_counter() - start) * rate) + 1)
            while i < due:
                if inflight < cap:
                    inflight += 1
                    max_inflight = max(max_inflight, inflight)
                    task = asyncio.ensure_future(one(i))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                elif start + i / rate >= measure_from:
                    skipped += 1
                i += 1
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        if tasks:
            await asyncio.gather(*tasks)
        cpu = time.process_time() - cpu0
    window = (max(done_times) - measure_from) if done_times else float("nan")
    return {
        "latencies": latencies,
        "statuses": dict(statuses),
        "errors": dict(errors),
        "skipped": skipped,
        "max_inflight": max_inflight,
        "achieved": len(done_times) / window if done_times else 0.0,
        "client_cpu": cpu / (time.perf_counter() - start),
    }


async def _serial(url: str, paths: list[tuple[str, dict[str, str]]], seconds: float) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    async with aiohttp.ClientSession() as session:
        end = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < end:
            path, headers = paths[i % len(paths)]
            i += 1
            t0 = time.perf_counter()
            async with session.get(url + path, headers=headers) as resp:
                await resp.read()
                statuses[resp.status] += 1
            latencies.append(time.perf_counter() - t0)
    return {"latencies": latencies, "statuses": dict(statuses), "rate": len(latencies) / seconds}


def serial(url: str, paths: list[tuple[str, dict[str, str]]], seconds: float) -> dict[str, Any]:
    return asyncio.run(_serial(url, paths, seconds))


def paced(
    url: str, paths: list[tuple[str, dict[str, str]]], rate: float, seconds: float, warmup: float, cap: int
) -> dict[str, Any]:
    return asyncio.run(_paced(url, paths, rate, seconds, warmup, cap))


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def produce_paced(bootstrap: str, events: list[tuple[str, bytes]], start: float, rate: float) -> list[float]:
    """Produce content events; event i at monotonic `start + i/rate`. Returns each produce time."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    times: list[float] = []
    for i, (key, value) in enumerate(events):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        while True:
            try:
                producer.produce("content_events", key=key.encode(), value=value)
                break
            except BufferError:
                producer.poll(0.01)
        times.append(time.monotonic())
        producer.poll(0)
    producer.flush(30)
    return times


# --------------------------------------------------------------------------------------------
# The stack


class Bench:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bench-timelines-"))
        self.servers: list[RunningBroker] = []
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_env: dict[str, str] = {}
        self.pool: Any = None
        # The Redis key builders of this process (`streams.serving.keys.KEYS`) use this app id;
        # the broker and Redis are the bench's own, so nothing else shares it.
        self.app_id = KEYS.app_id
        self.web_port = free_port()
        self.url = f"http://127.0.0.1:{self.web_port}"
        self.log = self.root / "worker.log"

    def start(self) -> None:
        broker = start_test_broker(broker_kind(), self.root)
        self.servers.append(broker)
        self.bootstrap = f"127.0.0.1:{broker.port}"
        server = start_redis(log=self.root / "redis.log")
        self.servers.append(server)
        self.redis_port = server.port
        self.redis = redis.Redis(host="127.0.0.1", port=server.port)
        env = {
            **os.environ,
            "KAFKA_BROKER": f"kafka://{self.bootstrap}",
            "REDIS_URL": f"redis://127.0.0.1:{server.port}/0",
            "HOMEMIXER_DATA_DIR": str(self.root / "data"),
            "WEB_PORT": str(self.web_port),
            "HOMEMIXER_FAST_REBALANCE": "1",
            "HOMEMIXER_APP_ID": self.app_id,
            "HOMEMIXER_SECRET": SECRET,
            "HOMEMIXER_READ_RATE": "1000000",
            "HOMEMIXER_PARTITIONS": str(PARTITIONS),
            "HOMEMIXER_CELEBRITY_THRESHOLD": str(CELEBRITY_THRESHOLD),
            "HOMEMIXER_TIMELINE_MAX": str(TIMELINE_MAX),
        }
        (self.root / "data").mkdir()
        self.worker_env = env
        self.spawn_worker()
        # The load generators run in a second process; spawned, not forked (librdkafka threads).
        # It ignores Ctrl-C (which the terminal sends to it too): we terminate it ourselves.
        self.pool = multiprocessing.get_context("spawn").Pool(1, initializer=_ignore_sigint)
        self.loadgen_pid = self.in_loadgen(os.getpid)
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.worker.poll() is not None:
                raise RuntimeError(f"the worker exited: {self.log_tail()}")
            if self.http_status("/readyz") == 200:
                return
            time.sleep(0.2)
        raise RuntimeError(f"the worker was not ready in {WORKER_READY_TIMEOUT_S} s: {self.log_tail()}")

    def spawn_worker(self) -> None:
        """Start the worker process (again, after a stop: same environment and data directory)."""
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warning"],
            env=self.worker_env,
            stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us; we stop it in order
        )

    def in_loadgen(self, fn: Any, *args: Any) -> Any:
        """Run fn(*args) in the load-generator process; waits in short steps so Ctrl-C gets through."""
        result = self.pool.apply_async(fn, args)
        while True:
            try:
                return result.get(timeout=0.2)
            except multiprocessing.TimeoutError:
                continue

    def stop(self, keep: bool = False) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
        if self.worker is not None:
            terminate(self.worker, 20)
        for server in reversed(self.servers):
            server.stop()
        if keep:
            print(f"kept {self.root} (worker.log, broker.log, redis.log) for inspection", file=sys.stderr)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def http_status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return -1

    def metric(self, name: str, **labels: str) -> float:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
            return metric_value(response.read().decode(), name, **labels)

    def check_alive(self) -> None:
        assert self.worker is not None
        if self.worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {self.worker.returncode}: {self.log_tail()}")

    def cpu(self) -> dict[str, tuple[float, float]]:
        assert self.worker is not None
        pids = {
            "worker": self.worker.pid,
            "broker": self.servers[0].process.pid,
            "redis": self.servers[1].process.pid,
            "loadgen": self.loadgen_pid,
            "bench": os.getpid(),
        }
        return {name: cpu_s(pid) for name, pid in pids.items()} | {"wall": (time.monotonic(), 0.0)}


def cpu_line(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> str:
    wall = after["wall"][0] - before["wall"][0]
    parts = []
    for name in before:
        if name != "wall":
            ran = 100 * (after[name][0] - before[name][0]) / wall
            waited = 100 * (after[name][1] - before[name][1]) / wall
            parts.append(f"{name} {ran:.0f}%" + (f" (+{waited:.0f}% waiting)" if name == "worker" else ""))
    return "CPU, % of one core (waiting: runnable, no CPU free): " + ", ".join(parts)


def graph_timeout_s(follows: int) -> float:
    return max(GRAPH_TIMEOUT_S, follows / GRAPH_MIN_RATE)


def produce_all(producer: Producer, messages: Iterable[tuple[str, str, dict[str, Any]]]) -> int:
    n = 0
    for message in messages:
        produce(producer, message)
        producer.poll(0)
        n += 1
    producer.flush(60)
    return n


def committed(bench: Bench, topics: list[str]) -> dict[str, int]:
    """Per topic, the sum over partitions of the offsets the worker's consumer group committed.

    Each follow becomes exactly one message on each internal graph topic (more only if the parser
    re-sent after a crash), so the graph is processed when both sums reach the follows sent.
    (Comparing with the high watermarks does not work on this Tansu build: its ListOffsets
    reported a partition's latest offset 2 below the offset the group had consumed and committed.)
    """
    admin = AdminClient({"bootstrap.servers": bench.bootstrap})
    tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
    request = ConsumerGroupTopicPartitions(bench.app_id, tps)
    result = admin.list_consumer_group_offsets([request])[bench.app_id].result(timeout=10)
    out = dict.fromkeys(topics, 0)
    for tp in result.topic_partitions:
        out[tp.topic] += max(0, tp.offset)
    return out


# --------------------------------------------------------------------------------------------
# The phases


def setup_graph(bench: Bench, producer: Producer) -> dict[int, list[int]]:
    """Send the follow graph and one page_view per user; wait until the worker has applied both."""
    now = int(time.time() * 1000)
    follows = list(Workload(users=USERS, celebrities=CELEBRITIES).follow_graph(now))
    followers: dict[int, list[int]] = defaultdict(list)
    for _, _, event in follows:
        followers[event["dst_user_id"]].append(event["src_user_id"])
    apply_graph(bench, producer, follows, USERS, now)
    return followers


def apply_graph(
    bench: Bench, producer: Producer, follows: list[tuple[str, str, dict[str, Any]]], users: int, now: int
) -> float:
    """Send `follows` and one page_view for each of users 1..`users`; wait until the worker has
    applied both; return the seconds that took."""
    views = [
        (
            "user_activity_events",
            str(u),
            {"event_id": f"bench-view-{u}", "ts": now, "type": "page_view", "user_id": u},
        )
        for u in range(1, users + 1)
    ]
    cpu0 = bench.cpu()
    start = time.monotonic()
    produce_all(producer, follows)
    produce_all(producer, views)
    say(f"graph: sent {len(follows):,} follows and {len(views):,} page_views; waiting for the worker")
    internal = [f"{bench.app_id}-graph-by-follower", f"{bench.app_id}-graph-by-followee"]
    deadline = start + graph_timeout_s(len(follows))
    last = 0.0
    while True:
        bench.check_alive()
        graph = bench.metric("homemixer_messages_total", topic="social_graph_events", outcome="applied")
        views_done = bench.metric("homemixer_messages_total", topic="user_activity_events", outcome="applied")
        done = committed(bench, internal) if graph >= len(follows) else {}
        lag = sum(max(0, len(follows) - n) for n in done.values()) if done else -1
        if graph >= len(follows) and views_done >= len(views) and lag == 0:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"graph not processed in {graph_timeout_s(len(follows)):.0f} s: "
                f"parser applied {graph:.0f}/{len(follows)} "
                f"follows, {views_done:.0f}/{len(views)} page_views; fanout lag {lag}"
            )
        if time.monotonic() - last > 5:
            say(
                f"graph: parser applied {graph:,.0f}/{len(follows):,} follows, "
                f"{views_done:,.0f}/{len(views):,} page_views; fanout uncommitted {lag if lag >= 0 else '?'}"
            )
            last = time.monotonic()
        time.sleep(0.5)
    dead = sum(
        bench.metric("homemixer_messages_total", topic=t, outcome="dead_letter")
        for t in ("social_graph_events", "user_activity_events")
    )
    elapsed = time.monotonic() - start
    say(
        f"graph: processed in {elapsed:.1f} s ({(len(follows) + len(views)) / elapsed:,.0f} source events/s "
        f"through parser and fanout); dead letters: {dead:.0f}; {cpu_line(cpu0, bench.cpu())}"
    )
    return elapsed


def materialise_all(bench: Bench) -> None:
    users = list(range(1, USERS + 1))
    say(
        f"materialise: GET /timelines/{{user}} once for each of {USERS:,} users "
        f"({MATERIALISE_CONCURRENCY} in flight)"
    )
    result = bench.in_loadgen(materialise, bench.url, users, MATERIALISE_CONCURRENCY)
    total, existing = bench.redis.register_script(SUM_ZCARD_LUA)(keys=[timeline_key(u) for u in users])
    say(
        f"materialise: {USERS:,} reads in {result['elapsed']:.1f} s ({USERS / result['elapsed']:,.0f}/s, "
        f"statuses {result['statuses']}); {existing:,} timelines exist, holding {total - existing} tweets"
    )
    if existing != USERS:
        raise RuntimeError(f"only {existing} of {USERS} timelines were materialised by reads")


def redis_benchmark_zadd(port: int) -> float | None:
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    cmd = [
        binary,
        "-p",
        str(port),
        "-P",
        "64",
        "-n",
        str(BENCH_REQUESTS),
        "-r",
        str(BENCH_REQUESTS),
        "-q",
        "-t",
        "zadd",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    rates = RATE.findall(out)
    return float(rates[-1]) if rates else None


def tweet_create(tweet_id: int, ts: int, author: int, text: str) -> dict[str, Any]:
    return {
        "event_id": f"bench-{tweet_id}",
        "ts": ts,
        "type": "tweet_create",
        "tweet_id": tweet_id,
        "author_id": author,
        "text": text,
    }


def fanout_phase(bench: Bench, producer: Producer, followers: dict[int, list[int]]) -> dict[str, Any]:
    authors = sorted(
        (a for a, f in followers.items() if FANOUT_MIN_FOLLOWERS <= len(f) < CELEBRITY_THRESHOLD),
        key=lambda a: -len(followers[a]),
    )
    # How many of these authors' tweets each user receives per round of one tweet each.
    per_round: Counter[int] = Counter()
    for a in authors:
        per_round.update({a, *followers[a]})
    per_author = min(FANOUT_TWEETS_PER_AUTHOR, TIMELINE_MAX // max(per_round.values()))
    expected = per_author * sum(per_round.values())
    base_total, _ = bench.redis.register_script(SUM_ZCARD_LUA)(keys=[timeline_key(u) for u in per_round])
    ids = SnowflakeGenerator(worker=900)
    tweets: list[tuple[str, str, dict[str, Any]]] = []
    now = int(time.time() * 1000)
    for i in range(per_author):
        for a in authors:
            event = tweet_create(ids.next_id(now), now, a, f"bench fanout {i} by {a}")
            tweets.append(("content_events", str(a), event))
    say(
        f"fanout: {len(tweets):,} tweets by the {len(authors)} non-celebrity authors with >= "
        f"{FANOUT_MIN_FOLLOWERS:,} followers ({len(followers[authors[0]]):,} to "
        f"{len(followers[authors[-1]]):,}); "
        f"{expected:,} deliveries expected into {len(per_round):,} timelines (at most "
        f"{per_author * max(per_round.values())} per timeline, cap {TIMELINE_MAX})"
    )
    keys = [timeline_key(u) for u in per_round]
    sum_zcard = bench.redis.register_script(SUM_ZCARD_LUA)
    cpu0 = bench.cpu()
    start = time.monotonic()
    produce_all(producer, tweets)
    produced = time.monotonic() - start
    last = start
    done = 0
    first_at = None
    while True:
        total, _ = sum_zcard(keys=keys)
        done = total - base_total
        now_m = time.monotonic()
        if done and first_at is None:
            first_at = now_m - start
        if done >= expected:
            break
        if now_m - start > FANOUT_TIMEOUT_S:
            bench.check_alive()
            break
        if now_m - last >= 2:
            say(f"fanout: {done:,}/{expected:,} delivered after {now_m - start:.1f} s")
            last = now_m
        time.sleep(FANOUT_POLL_S)
    elapsed = time.monotonic() - start
    cpu1 = bench.cpu()
    # Sanity: each author's last tweet is in every recipient's timeline.
    present = bench.redis.register_script(PRESENT_LUA)
    missing_last = 0
    for t in tweets[-len(authors) :]:
        ev = t[2]
        recipients = [ev["author_id"], *followers[ev["author_id"]]]
        flags = present(
            keys=[timeline_key(u) for u in recipients], args=[str(ev["tweet_id"])] * len(recipients)
        )
        missing_last += len(flags) - sum(flags)
    rate = done / elapsed
    say(
        f"fanout: {done:,}/{expected:,} deliveries in {elapsed:.2f} s (producing took {produced:.2f} s): "
        f"{rate:,.0f}/s (first delivery seen after {first_at or float('nan'):.2f} s); "
        f"last tweets missing from {missing_last} timelines; {cpu_line(cpu0, cpu1)}"
    )
    return {
        "tweets": len(tweets),
        "authors": len(authors),
        "expected": expected,
        "delivered": done,
        "elapsed": elapsed,
        "rate": rate,
        "first_at": first_at,
        "complete": done >= expected and missing_last == 0,
        "cpu": cpu_line(cpu0, cpu1),
        "read_pool": [u for u, n in per_round.items() if n * per_author >= READ_LIMIT],
    }


def read_phase(bench: Bench, pool_users: list[int]) -> dict[str, Any]:
    rng = random.Random(11)
    users = rng.sample(pool_users, min(READ_USERS, len(pool_users)))
    tl_paths = [
        (f"/timelines/{u}?limit={READ_LIMIT}", {"Authorization": f"Bearer {mint_token(SECRET, u)}"})
        for u in users
    ]
    out: dict[str, Any] = {}
    for label, paths in (("livez", [("/livez", {})]), ("timelines", tl_paths)):
        res = bench.in_loadgen(serial, bench.url, paths, UNLOADED_SECONDS)
        lat = [x * 1000 for x in res["latencies"]]
        out[f"{label}_serial"] = {"p50": pct(lat, 50), "p99": pct(lat, 99), "rate": res["rate"]}
        say(
            f"reads: {label}: one at a time for {UNLOADED_SECONDS:.0f} s: p50 {pct(lat, 50):.2f} ms, "
            f"p99 {pct(lat, 99):.2f} ms, {res['rate']:,.0f} req/s, statuses {res['statuses']}"
        )
        say(
            f"reads: {label}: {READ_RATE:,} req/s open loop for {READ_WARMUP_S:.0f} s warm-up + "
            f"{READ_SECONDS:.0f} s measured"
            + (f", over {len(users):,} users" if label == "timelines" else "")
        )
        cpu0 = bench.cpu()
        res = bench.in_loadgen(
            paced, bench.url, paths, READ_RATE, READ_SECONDS, READ_WARMUP_S, READ_MAX_INFLIGHT
        )
        cpu1 = bench.cpu()
        lat = [x * 1000 for x in res.pop("latencies")]
        res.update(
            n=len(lat), p50=pct(lat, 50), p99=pct(lat, 99), p999=pct(lat, 99.9), max=max(lat, default=0)
        )
        res["cpu"] = cpu_line(cpu0, cpu1)
        say(
            f"reads: {label}: p50 {res['p50']:.2f} ms, p99 {res['p99']:.2f} ms, p99.9 {res['p999']:.2f} ms, "
            f"max {res['max']:.1f} ms; achieved {res['achieved']:,.0f} req/s; statuses {res['statuses']}, "
            f"errors {res['errors']}, skipped {res['skipped']}, max in flight {res['max_inflight']}; "
            f"{res['cpu']}"
        )
        out[label] = res
    # One body, to show what a read returns.
    u = users[0]
    req = urllib.request.Request(
        f"{bench.url}/timelines/{u}?limit={READ_LIMIT}",
        headers={"Authorization": f"Bearer {mint_token(SECRET, u)}"},
    )
    with urllib.request.urlopen(req, timeout=5) as response:
        body = orjson.loads(response.read())
    out["items_per_page"] = len(body["items"])
    return out


def freshness_phase(
    bench: Bench, followers: dict[int, list[int]], rate: float, seconds: float, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    n = int(rate * seconds)
    start_wall_ms = int(time.time() * 1000) + 2000
    start = time.monotonic() + 2.0
    ids = SnowflakeGenerator(worker=901)
    events: list[tuple[str, bytes]] = []
    checks: list[tuple[list[str], str]] = []  # per tweet: keys it must be in, member
    pushed = 0
    for i in range(n):
        author = rng.randint(1, USERS)
        ms = start_wall_ms + int(i * 1000 / rate)
        tid = ids.next_id(ms)
        events.append((str(author), orjson.dumps(tweet_create(tid, ms, author, f"bench freshness {i}"))))
        if len(followers.get(author, ())) >= CELEBRITY_THRESHOLD:
            keys = [authored_key(author)]
        else:
            keys = [timeline_key(u) for u in (author, *followers.get(author, ()))]
            pushed += len(keys)
        checks.append((keys, str(tid)))
    celebs = sum(1 for keys, _ in checks if not keys[0].startswith(TIMELINE_PREFIX))
    sizes = sorted(len(k) for k, _ in checks)
    say(
        f"freshness: {n:,} tweets at {rate:,}/s for {seconds:.0f} s, "
        f"authors uniform over {USERS:,} users: "
        f"{pushed:,} deliveries ({pushed / seconds:,.0f}/s), "
        f"recipients per tweet p50 {pct(sizes, 50)}, "
        f"p99 {pct(sizes, 99)}, max {sizes[-1]:,}; {celebs} by celebrities (checked in their authored sets)"
    )
    present = bench.redis.register_script(PRESENT_LUA)
    applied0 = bench.metric("homemixer_messages_total", topic="content_events", outcome="applied")
    cpu0 = bench.cpu()
    job = bench.pool.apply_async(produce_paced, (bench.bootstrap, events, start, rate))
    remaining: dict[int, list[str]] = {}
    visible: dict[int, float] = {}
    admitted = 0
    next_probe: dict[int, float] = {}
    per_round = int(PROBE_PER_S * FRESH_POLL_S)
    rotor = -1  # the last tweet index the rotating share probed
    probes = 0
    rounds = 0
    round_time = 0.0
    last = time.monotonic()
    end_by = start + seconds + FRESH_DRAIN_S

    def check(pairs: list[tuple[int, str]]) -> list[int]:
        flags: list[int] = []
        for k in range(0, len(pairs), CHECK_ARGS_PER_CALL):
            part = pairs[k : k + CHECK_ARGS_PER_CALL]
            flags += present(keys=[key for _, key in part], args=[checks[i][1] for i, _ in part])
        return flags

    while True:
        t0 = time.monotonic()
        due = min(n, max(0, int((t0 - start) * rate) + 1)) if t0 >= start else 0
        while admitted < due:
            remaining[admitted] = list(checks[admitted][0])
            next_probe[admitted] = t0
            admitted += 1
        due_now = [i for i in remaining if next_probe[i] <= t0]  # oldest first
        order = due_now[: per_round * 3 // 4]
        rest = due_now[len(order) :]
        if len(rest) > per_round - len(order):
            rest = ([i for i in rest if i > rotor] + [i for i in rest if i <= rotor])[
                : per_round - len(order)
            ]
        if rest:
            rotor = rest[-1]
        order += rest
        if order:
            for i in order:
                next_probe[i] = t0 + PROBE_INTERVAL_S
            probes += len(order)
            probe = check([(i, remaining[i][-1]) for i in order])
            hit = [i for i, f in zip(order, probe, strict=True) if f]
            pairs = [(i, key) for i in hit for key in remaining[i]]
            if pairs:
                flags = check(pairs)
                missing: dict[int, list[str]] = {i: [] for i in hit}
                for (i, key), f in zip(pairs, flags, strict=True):
                    if not f:
                        missing[i].append(key)
                now_m = time.monotonic()
                for i, keys in missing.items():
                    if keys:
                        remaining[i] = keys
                    else:
                        del remaining[i]
                        visible[i] = now_m
        rounds += 1
        t1 = time.monotonic()
        round_time += t1 - t0
        if admitted == n and not remaining:
            break
        if t1 > end_by:
            break
        if t1 - last >= 5:
            say(f"freshness: {admitted:,} due, {len(visible):,} visible, {len(remaining):,} pending")
            last = t1
        if t1 - t0 < FRESH_POLL_S:
            time.sleep(FRESH_POLL_S - (t1 - t0))
    produced_at = job.get(timeout=60)
    ended = time.monotonic()
    cpu1 = bench.cpu()
    applied = bench.metric("homemixer_messages_total", topic="content_events", outcome="applied") - applied0
    # A tweet never seen counts with the time it had waited when polling stopped: a lower bound,
    # so a percentile that falls on one is a lower bound too (flagged by "never" > 0).
    lat = [((visible[i] if i in visible else ended) - produced_at[i]) * 1000 for i in range(n)]
    seen = [lat[i] for i in visible]
    lateness = [produced_at[i] - (start + i / rate) for i in range(n)]
    achieved = (n - 1) / (produced_at[-1] - produced_at[0])
    res = {
        "rate": rate,
        "seconds": seconds,
        "n": n,
        "visible": len(visible),
        "never": n - len(visible),
        "parser_applied": applied,
        "p50": pct(lat, 50),
        "p99": pct(lat, 99),
        "max": max(lat, default=float("nan")),
        "seen_p50": pct(seen, 50),
        "seen_p99": pct(seen, 99),
        "produce_rate": achieved,
        "produce_late_max": max(lateness),
        "poll_ms": 1000 * round_time / rounds,
        "probes_per_s": probes / (ended - start),
        "pushed": pushed,
        "cpu": cpu_line(cpu0, cpu1),
    }
    bound = ">= " if res["never"] else ""
    say(
        f"freshness: {res['visible']:,}/{n:,} visible by the end (the parser applied {applied:,.0f} "
        f"of the {n:,} tweets); p50 {bound}{res['p50']:.0f} ms, p99 {bound}{res['p99']:.0f} ms "
        f"(of the visible ones: p50 {res['seen_p50']:.0f} ms, p99 {res['seen_p99']:.0f} ms); "
        f"produced at {achieved:,.0f}/s (latest {res['produce_late_max'] * 1000:.0f} ms behind "
        f"schedule); poll round {res['poll_ms']:.1f} ms, {res['probes_per_s']:,.0f} probes/s; {res['cpu']}"
    )
    return res


def git_describe() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True
        ).stdout
    except OSError:
        return "unknown"
    if not head.strip():
        return f"{root} (not a git checkout)"
    return head.strip() + (" + uncommitted changes" if dirty.strip() else "")


def report(
    fan: dict[str, Any],
    ceiling: float | None,
    reads: dict[str, Any],
    low: dict[str, Any],
    fresh: dict[str, Any],
) -> None:
    print()
    print("=" * 100)
    print(
        f"homemixer timelines, one worker, {os.cpu_count()} cores, "
        f"{USERS:,} users (power-law, {CELEBRITIES} celebrities)"
    )
    print(f"code: {git_describe()}; load average at the end: {os.getloadavg()[0]:.2f}")
    print("-" * 100)
    print("1. fanout deliveries/s through the whole pipeline (Kafka -> parser -> fanout -> Redis)")
    print(
        f"   ours: {fan['delivered']:,} deliveries of {fan['tweets']:,} tweets in {fan['elapsed']:.2f} s   "
        f"{fan['rate']:>12,.0f}/s" + ("" if fan["complete"] else "   INCOMPLETE")
    )
    if ceiling:
        print(
            f"   baseline: redis-benchmark -P 64 -n {BENCH_REQUESTS} -r {BENCH_REQUESTS} -q -t zadd    "
            f"{ceiling:>12,.0f}/s"
        )
        verdict = "met" if fan["rate"] >= 0.5 * ceiling else "NOT met"
        print(f"   ratio {fan['rate'] / ceiling:.2f} (target >= 0.50: {verdict})")
    else:
        print("   baseline: redis-benchmark unavailable")
    print(f"2. read latency at {READ_RATE:,} req/s (client-side, request start to body read)")
    for label in ("timelines", "livez"):
        r = reads[label]
        name = (
            f"GET /timelines/{{user}}?limit={READ_LIMIT}" if label == "timelines" else "baseline: GET /livez"
        )
        print(
            f"   {name:<40} p50 {r['p50']:7.2f} ms  p99 {r['p99']:7.2f} ms  "
            f"achieved {r['achieved']:7,.0f} req/s  "
            f"non-200 {sum(v for k, v in r['statuses'].items() if k != 200)}  skipped {r['skipped']}"
        )
    for label in ("timelines", "livez"):
        r = reads[f"{label}_serial"]
        print(
            f"   {label + ', one request at a time':<40} p50 {r['p50']:7.2f} ms  p99 {r['p99']:7.2f} ms  "
            f"achieved {r['rate']:7,.0f} req/s"
        )
    t, h = reads["timelines"], reads["livez"]
    ok = t["p99"] <= 10 and t["achieved"] >= 0.95 * READ_RATE
    print(
        f"   ratio p99 timelines/livez {t['p99'] / h['p99']:.1f}x (target p99 <= 10 ms at {READ_RATE:,}/s: "
        f"{'met' if ok else 'NOT met'})"
    )
    print("3. freshness: tweet_create produced -> in every eligible timeline (author and followers)")
    for r in (fresh, low):
        bound = ">= " if r["never"] else ""
        label = f"{r['rate']:,.0f} tweets/s for {r['seconds']:.0f} s" + (" (context)" if r is low else "")
        print(
            f"   {label:<32} p50 {bound}{r['p50']:.0f} ms  p99 {bound}{r['p99']:.0f} ms  "
            f"({r['visible']:,}/{r['n']:,} visible by the end, parser applied {r['parser_applied']:,.0f}; "
            f"produced at {r['produce_rate']:,.0f}/s)"
        )
    ok = fresh["p99"] <= 1000 and fresh["never"] == 0
    print(f"   target p99 <= 1 s at {FRESH_RATE:,}/s: {'met' if ok else 'NOT met'}")
    print("=" * 100)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    global USERS
    if len(sys.argv) > 1:
        USERS = int(sys.argv[1])
    # SIGTERM behaves like Ctrl-C: unwind, so that `finally` stops everything.
    signal.signal(signal.SIGTERM, _interrupt)
    began = time.monotonic()
    bench = Bench()
    failed = True
    try:
        say(f"starting broker, Redis and one worker under {bench.root}")
        bench.start()
        say(f"worker ready at {bench.url} (app id {bench.app_id})")
        producer = Producer({"bootstrap.servers": bench.bootstrap, "linger.ms": 5})
        followers = setup_graph(bench, producer)
        materialise_all(bench)
        say("baseline: redis-benchmark -P 64 -n 1000000 -r 1000000 -q -t zadd")
        ceiling = redis_benchmark_zadd(bench.redis_port)
        for key in bench.redis.scan_iter(match="myzset*"):
            bench.redis.delete(key)
        say(f"baseline: {ceiling:,.0f} ZADD/s" if ceiling else "baseline: no redis-benchmark on PATH")
        fan = fanout_phase(bench, producer, followers)
        reads = read_phase(bench, fan["read_pool"])
        low = freshness_phase(bench, followers, FRESH_LOW_RATE, FRESH_LOW_SECONDS, seed=29)
        fresh = freshness_phase(bench, followers, FRESH_RATE, FRESH_SECONDS, seed=23)
        bench.check_alive()
        report(fan, ceiling, reads, low, fresh)
        say(f"done in {time.monotonic() - began:.0f} s")
        failed = False
    except KeyboardInterrupt:
        failed = False  # stopped on purpose: nothing to inspect
        raise
    except BaseException:
        if bench.log.exists():
            print(f"--- worker log tail ---\n{bench.log_tail()}", file=sys.stderr)
        raise
    finally:
        bench.stop(keep=failed)


if __name__ == "__main__":
    main()
