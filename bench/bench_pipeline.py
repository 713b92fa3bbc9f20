"""The whole topology end to end, through the contract: engagements in, `real_time_features` out.

python -m bench.bench_pipeline [--events N] [--mix likes|realistic|both] [--workers 1,2]
                               [--broker tansu|kafka] [--no-quix] [--no-delay] [--profile]

Starts its own broker (Tansu unless `--broker kafka` or HOMEMIXER_TEST_BROKER=kafka) and Redis, one
(or more) `homemixer worker` processes as an operator would, and measures, per mix:

  pipeline  N engagement events produced into `engagement_events` with confluent-kafka, timed from
            the first produce call to the `real_time_features` message that completes the
            reference: every tweet, author, user and user x author entity's newest vector holds
            exactly the `<type>.total` counts computed here from the events produced. Also the
            workers' CPU seconds over that span and their peak RSS; then the time until the
            workers went idle, every node done (the score calculator's `user_scores` last).
  raw       a confluent-kafka consumer reading the same N events (the ceiling of one client).
  quix      a Quix Streams app doing the aggregator's work (repartition by tweet, author and user,
            decayed counts in RocksDB state, one vector per update), over the same backlog; timed
            from its first output to its last (bench-only extra: pip install quixstreams).
  delay     once the workers are idle after the backlog, events produced at half the achieved
            rate for DELAY_S seconds: the delay from each event's `ts` to the feature message of
            its tweet (p50, p99), as
            `homemixer_feature_delay_seconds` measures it inside the worker.

With `--profile`, py-spy samples the first worker during each pipeline run, and the bench prints
where its time went: the share of samples under each homemixer function and the Redis and Kafka
clients (inclusive; the raw stacks stay in the run's directory).

Mixes: `likes` (likes only; 2,000 tweets of 100 authors, 50,000 users, uniform), `realistic`
(80% impressions, then likes, clicks, dwell with `dwell_ms`, replies, retweets; tweets and users
drawn from a power law).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from streams.dev.embedded import start_redis
from tests.brokers import broker_kind, start_test_broker
from tests.harness import Cluster, WorkerProcess

SOURCE = "engagement_events"
FEATURES = "real_time_features"
TWEETS, AUTHORS, USERS = 2_000, 100, 50_000
REALISTIC_TYPES = {"impression": 80, "like": 8, "click": 5, "dwell": 4, "reply": 2, "retweet": 1}
DELAY_S = 15.0
RUN_TIMEOUT_S = 600.0


# ---------------------------------------------------------------------------------------------
# Workloads and the reference they must produce.


def power_law(rng: random.Random, n: int, alpha: float = 1.2) -> int:
    """An index in [0, n): a few are drawn very often, most rarely (Zipf-like, as engagement is)."""
    return min(int(rng.paretovariate(alpha)) - 1, n - 1)


def workload(mix: str, n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    types = list(REALISTIC_TYPES)
    weights = list(REALISTIC_TYPES.values())
    start = int(time.time() * 1000) - n  # one event per ms of event time, ending now
    events = []
    for i in range(n):
        if mix == "likes":
            tweet, user, kind = rng.randrange(TWEETS), rng.randrange(USERS), "like"
        else:
            tweet, user = power_law(rng, TWEETS), power_law(rng, USERS, 1.05)
            kind = rng.choices(types, weights)[0]
        event: dict[str, Any] = {
            "event_id": f"{mix}-{i}",
            "ts": start + i,
            "user_id": user + 1,
            "tweet_id": 10_000 + tweet,
            "author_id": 1 + tweet % AUTHORS,
            "type": kind,
        }
        if kind == "dwell":
            event["dwell_ms"] = rng.randrange(100, 20_000)
        events.append(event)
    return events


def reference(events: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Per `real_time_features` key, the undecayed count of each engagement type (CONTRACT.md)."""
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    for e in events:
        for key in (
            f"tweet:{e['tweet_id']}",
            f"author:{e['author_id']}",
            f"user:{e['user_id']}",
            f"user_author:{e['user_id']}:{e['author_id']}",
        ):
            totals[key][e["type"]] += 1
    return totals


@dataclass
class Completion:
    """Tracks, as feature messages arrive, how many entities' newest vectors match the reference."""

    expected: dict[str, Counter[str]]
    newest: dict[str, dict[str, float]] = field(default_factory=dict)
    matched: set[str] = field(default_factory=set)
    messages: int = 0

    def add(self, key: str, features: dict[str, float]) -> None:
        self.messages += 1
        want = self.expected.get(key)
        if want is None:
            return
        # A vector is the entity's whole state (the feature updater merges every family).
        self.newest[key] = features
        if all(features.get(f"{kind}.total") == n for kind, n in want.items()):
            self.matched.add(key)
        else:
            self.matched.discard(key)

    @property
    def done(self) -> bool:
        return len(self.matched) == len(self.expected)


# ---------------------------------------------------------------------------------------------
# Producing and reading through ordinary clients.


def produce(bootstrap: str, topic: str, events: list[dict[str, Any]], rate: float | None = None) -> float:
    """Produce keyed by `user_id` (CONTRACT.md); returns the wall time of the first produce call.
    With `rate`, paces to that many events/s and stamps each event's `ts` as it is sent."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.num.messages": 10_000})
    started = time.time()
    for i, event in enumerate(events):
        if rate is not None:
            due = started + i / rate
            if (wait := due - time.time()) > 0:
                time.sleep(wait)
            event["ts"] = int(time.time() * 1000)
        while True:
            try:
                producer.produce(topic, key=str(event["user_id"]).encode(), value=orjson.dumps(event))
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(60)
    return started


def reader(bootstrap: str, topic: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 500,
            "fetch.max.bytes": 50 * 1024 * 1024,
        }
    )
    deadline = time.monotonic() + 30
    while True:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        if meta.partitions or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
    return consumer


def read_features(consumer: Consumer, completion: Completion, timeout_s: float) -> float | None:
    """Read until the reference is complete; the broker timestamp (ms) of the completing message."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for msg in consumer.consume(10_000, timeout=0.5):
            if msg.error() is not None:
                continue
            value = orjson.loads(msg.value())
            completion.add(msg.key().decode(), value["features"])
            if completion.done:
                return msg.timestamp()[1] / 1000
    return None


class WorkerUsage:
    """CPU seconds and peak RSS of worker processes (and their children), sampled from /proc."""

    def __init__(self, workers: list[WorkerProcess]) -> None:
        self.procs = [psutil.Process(w.proc.pid) for w in workers]
        self.cpu_start = self.cpu()

    def cpu(self) -> float:
        return sum(p.cpu_times().user + p.cpu_times().system for p in self.procs)

    def wait_idle(self, timeout_s: float) -> float:
        """Wait until the workers use under 10% of a CPU for two seconds; the wall time they
        went idle (everything they had to do is done)."""
        deadline = time.monotonic() + timeout_s
        idle_since, cpu = time.time(), self.cpu()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now_cpu = self.cpu()
            if now_cpu - cpu > 0.05:
                idle_since = time.time()
            elif time.time() - idle_since >= 2.0:
                return idle_since
            cpu = now_cpu
        raise RuntimeError(f"workers still busy after {timeout_s} s")

    def peak_rss_mb(self) -> float:
        peak = 0
        for p in self.procs:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        return peak / 1024


# ---------------------------------------------------------------------------------------------
# Runs.


def run_pipeline(
    bootstrap: str,
    redis_url: str,
    root: Path,
    mix: str,
    events: list[dict[str, Any]],
    workers: int,
    delay: bool,
    profile: bool = False,
) -> dict[str, Any]:
    with Cluster(bootstrap, redis_url, root) as cluster:
        procs = [cluster.start_worker(f"w{i}", wait=False) for i in range(workers)]
        for proc in procs:
            cluster.wait_ready(proc)
        if workers > 1:
            time.sleep(8)  # let the group settle after the last join
        consumer = reader(bootstrap, FEATURES)
        completion = Completion(reference(events))
        usage = WorkerUsage(procs)
        first: list[float] = []
        sampler = start_profile(procs[0], root / "profile.txt") if profile else None
        producing = threading.Thread(target=lambda: first.append(produce(bootstrap, SOURCE, events)))
        producing.start()
        done_at = read_features(consumer, completion, RUN_TIMEOUT_S)
        producing.join()
        cpu = usage.cpu() - usage.cpu_start
        if sampler is not None:
            print_profile(stop_profile(sampler, root / "profile.txt"))
        if done_at is None:
            raise RuntimeError(
                f"features incomplete after {RUN_TIMEOUT_S} s: {len(completion.matched)} of "
                f"{len(completion.expected)} entities match"
            )
        seconds = done_at - first[0]
        result = {
            "events": len(events),
            "seconds": seconds,
            "events_per_s": len(events) / seconds,
            "cpu_seconds": cpu,
            "events_per_cpu_s": len(events) / cpu,
            "feature_messages": completion.messages,
            "peak_rss_mb": usage.peak_rss_mb(),
        }
        # The rest of the topology (user_scores above all) may still be working on the backlog.
        drained = usage.wait_idle(RUN_TIMEOUT_S)
        result["drained_s"] = drained - first[0]
        result["drained_events_per_s"] = len(events) / result["drained_s"]
        if delay:
            result["delay"] = measure_delay(bootstrap, consumer, mix, result["events_per_s"] / 2)
        consumer.close()
        return result


def start_profile(worker: WorkerProcess, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["py-spy", "record", "-p", str(worker.proc.pid), "-r", "100", "-f", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_profile(sampler: subprocess.Popen[bytes], out: Path) -> list[tuple[list[str], int]]:
    sampler.send_signal(signal.SIGINT)
    sampler.wait(30)
    stacks = []
    for line in out.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        stacks.append((stack.split(";"), int(n)))
    return stacks


PROFILED = ("streams/", "topologies/", "redis/", "confluent_kafka", "aiokafka/", "rocksdict", "orjson")


def print_profile(stacks: list[tuple[list[str], int]], top: int = 30) -> None:
    """Inclusive share of samples per function of homemixer and its clients (the worker's idle
    loop is not sampled, so shares are of busy time)."""
    total = sum(n for _, n in stacks)
    inclusive: Counter[str] = Counter()
    for frames, n in stacks:
        # py-spy names a frame "function (file:line)"; one entry per function and file.
        names = {f.rsplit(":", 1)[0] + ")" for f in frames if any(p in f for p in PROFILED)}
        for name in names:
            inclusive[name] += n
    print(f"profile of worker 0 ({total} samples at 100 Hz, inclusive):")
    for name, n in inclusive.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {name}")


def measure_delay(bootstrap: str, consumer: Consumer, mix: str, rate: float) -> dict[str, float]:
    """Events of `mix` at `rate` for DELAY_S, each stamped with its send time: per tweet vector,
    the delay from the newest event it covers (its `ts`) to the message's broker timestamp."""
    events = workload(mix, int(rate * DELAY_S), seed=11)
    for i, e in enumerate(events):
        e["event_id"] = f"delay-{i}"
    producing = threading.Thread(target=produce, args=(bootstrap, SOURCE, events, rate))
    producing.start()
    delays: list[int] = []
    quiet_since = time.monotonic()
    while producing.is_alive() or time.monotonic() - quiet_since < 5:
        for msg in consumer.consume(10_000, timeout=0.2):
            if msg.error() is None and msg.key().startswith(b"tweet:"):
                delays.append(msg.timestamp()[1] - orjson.loads(msg.value())["ts"])
                quiet_since = time.monotonic()
    producing.join()
    delays.sort()
    if not delays:
        return {"rate": rate, "messages": 0}
    return {
        "rate": rate,
        "messages": len(delays),
        "p50_s": delays[len(delays) // 2] / 1000,
        "p99_s": delays[int(len(delays) * 0.99)] / 1000,
    }


def run_raw(bootstrap: str, n: int) -> dict[str, Any]:
    """Timed from the first delivery, which is not counted, to the last of the N events."""
    consumer = reader(bootstrap, SOURCE)
    first = consumer.consume(10_000, timeout=30)
    started, cpu0 = time.perf_counter(), time.process_time()
    count, target = 0, n - len(first)
    deadline = time.monotonic() + 120
    while count < target and time.monotonic() < deadline:
        count += len(consumer.consume(10_000, timeout=0.5))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu0
    consumer.close()
    return {
        "events": count,
        "seconds": seconds,
        "events_per_s": count / seconds,
        "events_per_cpu_s": count / cpu,
    }


def run_quix(bootstrap: str, n: int, root: Path) -> dict[str, Any] | None:
    try:
        import quixstreams  # noqa: F401
    except ImportError:
        print("quix: skipped (pip install quixstreams)", flush=True)
        return None
    out = f"quix-features-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.quix_peer", bootstrap, SOURCE, out, str(root / "quix")],
        stdout=open(root / "quix.log", "ab"),
        stderr=subprocess.STDOUT,
    )
    usage = psutil.Process(proc.pid)
    # One vector per update: tweet, author, user and user x author per event.
    expected = 4 * n
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                consumer = reader(bootstrap, out)
                break
            except KeyError:
                time.sleep(0.5)
        count, first, last = 0, 0.0, 0.0
        cpu0 = 0.0
        while count < expected and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, timeout=0.5):
                if msg.error() is not None:
                    continue
                ts = time.time()  # Quix stamps outputs with their input's timestamp
                if count == 0:
                    first, cpu0 = ts, usage.cpu_times().user + usage.cpu_times().system
                count += 1
                last = ts
            if proc.poll() is not None:
                raise RuntimeError(f"quix peer exited: {(root / 'quix.log').read_text()[-2000:]}")
        cpu = usage.cpu_times().user + usage.cpu_times().system - cpu0
        consumer.close()
    finally:
        proc.terminate()
        proc.wait(10)
    if count < expected:
        raise RuntimeError(f"quix peer wrote {count} of {expected} vectors")
    seconds = last - first
    return {"events": n, "seconds": seconds, "events_per_s": n / seconds, "events_per_cpu_s": n / cpu}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--mix", choices=["likes", "realistic", "both"], default="both")
    parser.add_argument("--workers", default="1,2", help="worker counts to run, comma-separated")
    parser.add_argument("--broker", choices=["tansu", "kafka"], default=None)
    parser.add_argument("--no-quix", action="store_true")
    parser.add_argument("--no-delay", action="store_true")
    parser.add_argument("--profile", action="store_true", help="sample worker 0 with py-spy")
    args = parser.parse_args()
    kind = broker_kind(args.broker)
    mixes = ["likes", "realistic"] if args.mix == "both" else [args.mix]
    worker_counts = [int(w) for w in args.workers.split(",")]
    print(f"bench_pipeline: {args.events} events per mix, broker {kind}, {os.cpu_count()} CPUs", flush=True)
    redis = start_redis()
    redis_url = f"redis://127.0.0.1:{redis.port}/0"
    report: dict[str, Any] = {}
    try:
        for mix in mixes:
            events = workload(mix, args.events)
            for workers in worker_counts:
                with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
                    root = Path(tmp)
                    broker = start_test_broker(kind, root)
                    bootstrap = f"127.0.0.1:{broker.port}"
                    try:
                        import redis as sync_redis

                        sync_redis.Redis.from_url(redis_url).flushall()
                        delay = workers == worker_counts[0] and not args.no_delay
                        result = run_pipeline(
                            bootstrap, redis_url, root, mix, list(events), workers, delay, args.profile
                        )
                        report[f"{mix}/pipeline/{workers}w"] = result
                        print_row(f"{mix} pipeline {workers}w", result)
                        if workers == worker_counts[0]:
                            raw = run_raw(bootstrap, args.events)
                            report[f"{mix}/raw"] = raw
                            print_row(f"{mix} raw consumer", raw)
                            quix = None if args.no_quix else run_quix(bootstrap, args.events, root)
                            if quix is not None:
                                report[f"{mix}/quix"] = quix
                                print_row(f"{mix} quix peer", quix)
                            print_ratios(mix, result, raw, quix)
                    finally:
                        broker.stop()
    finally:
        redis.stop()
    print(json.dumps(report, indent=1))


def print_row(name: str, r: dict[str, Any]) -> None:
    extra = f"  peak RSS {r['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in r else ""
    print(
        f"{name:<28} {r['events_per_s']:>10,.0f} events/s  {r['events_per_cpu_s']:>10,.0f} per CPU-s"
        f"  ({r['events']} in {r['seconds']:.2f} s){extra}",
        flush=True,
    )
    if "drained_s" in r:
        print(
            f"{'':<28} {r['drained_events_per_s']:>10,.0f} events/s until every node was done"
            f" (user_scores included: {r['drained_s']:.1f} s)"
        )
    if "delay" in r and r["delay"].get("messages"):
        d = r["delay"]
        print(f"{'':<28} feature delay at {d['rate']:,.0f}/s: p50 {d['p50_s']:.3f} s, p99 {d['p99_s']:.3f} s")


def print_ratios(
    mix: str, pipeline: dict[str, Any], raw: dict[str, Any], quix: dict[str, Any] | None
) -> None:
    line = f"{mix}: pipeline/raw {pipeline['events_per_s'] / raw['events_per_s']:.3f}"
    if quix is not None:
        line += f", pipeline/quix {pipeline['events_per_s'] / quix['events_per_s']:.2f}x"
    print(line, flush=True)


if __name__ == "__main__":
    main()
