"""What a big follow graph costs: RocksDB disk, worker memory and Redis memory per user and per
follow, measured on a power-law graph built through `social_graph_events`, and extrapolated.

    python -m bench.bench_scale [--users 100000] [--follows-per-user 20] [--timelines 5000]

Starts its own broker (Tansu, or Apache Kafka with HOMEMIXER_TEST_BROKER=kafka), Redis and one
`homemixer worker` (`bench.bench_timelines.Bench`), then:

1. Builds the graph: each user follows k distinct accounts, k Pareto-distributed (shape 1.5) with
   mean `--follows-per-user`, each followee drawn with a Zipf-like preference for low ids (Pareto
   shape 0.7), so a few accounts have most users as followers (celebrities, pulled on read) and
   most have a handful. One `page_view` per user makes every user active. It waits until the
   parser applied every event and the worker's group committed every internal graph message.
2. Measures the worker's RocksDB directory (every node's stores, on disk, WAL included), its RSS
   (now and peak), and Redis: `used_memory`, and per key family (`MEMORY USAGE` of up to 2,000
   keys of each, times the family's key count).
3. Materialises `--timelines` users' home timelines (one GET each, a rebuild) and measures what a
   materialised timeline costs in Redis. Then restarts the worker on the same state and measures
   its RSS again, without the backlog it had just worked through.
4. Prints the figures per user and per follow, and what they come to at 1,000,000 users and
   50,000,000 follows (linear in follows for RocksDB and the graph's Redis sets, in users for the
   rest; a timeline for every user, holding more ids as follows per user grow, up to the cap).

`--tweets-per-user` tweets by every user go through fanout before step 2, so that tweet bodies and
timelines hold something.

The graph's build rate (source events/s through parser and fanout) is printed with the worker's
CPU; a baseline for it is `bench.bench_pipeline`'s raw consumer. Everything started here is
stopped on exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench.bench_timelines import (
    MATERIALISE_CONCURRENCY,
    TIMELINE_MAX,
    WORKER_READY_TIMEOUT_S,
    Bench,
    _interrupt,
    apply_graph,
    committed,
    materialise,
    produce_all,
    say,
    tweet_create,
)
from streams.dev.embedded import terminate
from streams.serving.keys import KEYS
from streams.snowflake import SnowflakeGenerator

KEY_SAMPLE = 2000
RESTART_SETTLE_S = 10.0
TWEETS_TIMEOUT_S = 600.0
TARGET_USERS = 1_000_000
TARGET_FOLLOWS = 50_000_000
MAX_FOLLOWS_PER_USER = 5000


def power_law_graph(
    users: int, mean_follows: float, now: int, seed: int = 11
) -> list[tuple[str, str, dict[str, Any]]]:
    """The follow events of the graph the module docstring describes."""
    rng = random.Random(seed)
    follows = []
    for user in range(1, users + 1):
        # Pareto(1.5) has mean 3: scaled so that k's mean is `mean_follows`.
        wanted = min(MAX_FOLLOWS_PER_USER, users - 1, max(1, int(rng.paretovariate(1.5) * mean_follows / 3)))
        followees: set[int] = set()
        for _ in range(wanted * 8):
            followee = min(users, int(rng.paretovariate(0.7)))
            if followee != user:
                followees.add(followee)
            if len(followees) == wanted:
                break
        for followee in sorted(followees):
            event = {
                "event_id": f"scale-{user}-{followee}",
                "ts": now,
                "type": "follow",
                "src_user_id": user,
                "dst_user_id": followee,
            }
            follows.append(("social_graph_events", str(user), event))
    return follows


def apply_tweets(bench: Bench, producer: Producer, users: int, per_user: int) -> int:
    """`per_user` tweet_create events by every user, oldest first; wait until fanout committed
    them all. Returns how many were sent."""
    ids = SnowflakeGenerator(worker=3)
    tweets = []
    for round_ in range(per_user):
        for author in range(1, users + 1):
            tweet_id = ids.next_id()
            text = f"tweet {round_} of {author}"
            tweets.append(
                ("content_events", str(author), tweet_create(tweet_id, int(time.time() * 1000), author, text))
            )
    start = time.monotonic()
    produce_all(producer, tweets)
    topic = f"{bench.app_id}-content-by-author"
    while committed(bench, [topic])[topic] < len(tweets):
        bench.check_alive()
        if time.monotonic() - start > TWEETS_TIMEOUT_S:
            raise RuntimeError(f"fanout did not commit {len(tweets):,} tweets in {TWEETS_TIMEOUT_S:.0f} s")
        time.sleep(0.5)
    elapsed = time.monotonic() - start
    say(f"tweets: {len(tweets):,} fanned out in {elapsed:.1f} s ({len(tweets) / elapsed:,.0f}/s)")
    return len(tweets)


def directory_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def rss_bytes(pid: int) -> tuple[int, int]:
    """The process's resident set now and at its peak (VmRSS, VmHWM)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def restart_rss(bench: Bench) -> int:
    """The worker's RSS once restarted (SIGTERM, same environment and data directory) and ready
    again: its state without the backlog it just worked through."""
    assert bench.worker is not None
    terminate(bench.worker, 30)
    bench.spawn_worker()
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    while bench.http_status("/readyz") != 200:
        bench.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the restarted worker was not ready in {WORKER_READY_TIMEOUT_S} s")
        time.sleep(0.5)
    time.sleep(RESTART_SETTLE_S)
    return rss_bytes(bench.worker.pid)[0]


def key_family(key: bytes, prefix: bytes) -> str:
    """A key's family: the part of its name after the app prefix and before the next `:`."""
    rest = key[len(prefix) :] if key.startswith(prefix) else key
    return rest.split(b":", 1)[0].decode(errors="replace")


def redis_families(bench: Bench) -> dict[str, tuple[int, int]]:
    """Per key family: (keys, estimated bytes), from MEMORY USAGE of a sample of its keys."""
    prefix = KEYS.prefix.encode()
    counts: Counter[str] = Counter()
    samples: dict[str, list[bytes]] = {}
    for key in bench.redis.scan_iter(count=10_000):
        family = key_family(key, prefix)
        counts[family] += 1
        sample = samples.setdefault(family, [])
        if len(sample) < KEY_SAMPLE:
            sample.append(key)
    out = {}
    for family, keys in samples.items():
        pipe = bench.redis.pipeline(transaction=False)
        for key in keys:
            pipe.memory_usage(key, samples=0)
        sizes = [s or 0 for s in pipe.execute()]
        out[family] = (counts[family], int(sum(sizes) / len(sizes) * counts[family]))
    return out


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--follows-per-user", type=float, default=20.0)
    parser.add_argument("--tweets-per-user", type=int, default=2)
    parser.add_argument("--timelines", type=int, default=5000, help="home timelines to materialise")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    began = time.monotonic()
    bench = Bench()
    failed = True
    try:
        say(f"starting broker, Redis and one worker under {bench.root}")
        bench.start()
        assert bench.worker is not None
        now = int(time.time() * 1000)
        follows = power_law_graph(args.users, args.follows_per_user, now)
        in_degree = Counter(event["dst_user_id"] for _, _, event in follows)
        say(
            f"graph: {args.users:,} users, {len(follows):,} follows "
            f"({len(follows) / args.users:.1f} per user); most followed: "
            + ", ".join(f"{n:,}" for _, n in in_degree.most_common(5))
            + f"; accounts with any follower: {len(in_degree):,}"
        )
        producer = Producer({"bootstrap.servers": bench.bootstrap, "linger.ms": 20})
        seconds = apply_graph(bench, producer, follows, args.users, now)
        n_tweets = apply_tweets(bench, producer, args.users, args.tweets_per_user)
        time.sleep(2)  # the last batch's RocksDB writes and Redis writes settle
        rocksdb = directory_bytes(bench.root / "data")
        rss, peak = rss_bytes(bench.worker.pid)
        used = int(bench.redis.info("memory")["used_memory"])
        families = redis_families(bench)

        users = list(range(1, args.users + 1))
        sample = random.Random(5).sample(users, min(args.timelines, args.users))
        say(f"timelines: materialising {len(sample):,} home timelines (one GET each)")
        result = bench.in_loadgen(materialise, bench.url, sample, MATERIALISE_CONCURRENCY)
        pipe = bench.redis.pipeline(transaction=False)
        for user in sample:
            pipe.zcard(KEYS.timeline_key(user))
            pipe.memory_usage(KEYS.timeline_key(user), samples=0)
        replies = pipe.execute()
        entries = sum(max(0, n - 1) for n in replies[0::2])  # less each timeline's sentinel
        timeline_bytes = sum(b or 0 for b in replies[1::2])
        say(
            f"timelines: {len(sample):,} in {result['elapsed']:.1f} s (statuses {result['statuses']}), "
            f"{entries / len(sample):.0f} tweet ids each on average"
        )
        bench.check_alive()
        restarted_rss = restart_rss(bench)

        n_users, n_follows = args.users, len(follows)
        per_follow_rocksdb = rocksdb / n_follows
        graph_redis = sum(b for f, (_, b) in families.items() if f in ("fo", "bk", "bkby", "mu", "celebs"))
        tweet_redis = sum(b for f, (_, b) in families.items() if f in ("tw", "au"))
        other_redis = used - graph_redis - tweet_redis
        per_timeline = timeline_bytes / len(sample)
        print()
        print(
            f"graph built through social_graph_events in {seconds:.1f} s: "
            f"{(n_follows + n_users) / seconds:,.0f} source events/s"
        )
        print(
            f"| what | measured ({n_users:,} users, {n_follows:,} follows, {n_tweets:,} tweets) "
            "| per user | per follow |"
        )
        print("| --- | --- | --- | --- |")
        print(
            f"| RocksDB, every store | {mib(rocksdb)} | {rocksdb / n_users:,.0f} B "
            f"| {per_follow_rocksdb:,.0f} B |"
        )
        print(f"| worker RSS (peak) | {mib(rss)} ({mib(peak)}) | {rss / n_users:,.0f} B | |")
        print(
            f"| worker RSS restarted on that state, {RESTART_SETTLE_S:.0f} s after ready "
            f"| {mib(restarted_rss)} | {restarted_rss / n_users:,.0f} B | |"
        )
        print(
            f"| Redis used_memory, before timelines | {mib(used)} | {used / n_users:,.0f} B "
            f"| {used / n_follows:,.0f} B |"
        )
        for family, (count, estimate) in sorted(families.items(), key=lambda kv: -kv[1][1]):
            share = estimate / n_users
            print(f"| Redis `{family}` keys | {count:,} keys, ~{mib(estimate)} | {share:,.0f} B | |")
        per_tweet = f"{tweet_redis / n_tweets:,.0f} B per tweet" if n_tweets else "no tweets sent"
        print(
            f"| Redis tweets (`tw` bodies, `au` lists) | {mib(tweet_redis)} "
            f"| {tweet_redis / n_users:,.0f} B | {per_tweet} |"
        )
        print(
            f"| a materialised home timeline | {per_timeline:,.0f} B "
            f"({entries / len(sample):.0f} ids) | {per_timeline:,.0f} B | |"
        )
        print()
        at_rocksdb = per_follow_rocksdb * TARGET_FOLLOWS
        at_graph = graph_redis / n_follows * TARGET_FOLLOWS
        at_other = (other_redis + tweet_redis) / n_users * TARGET_USERS
        # A timeline holds its followees' recent tweets: at the target's follows per user, more ids
        # (up to the cap), each costing what one costs here.
        ids_here = entries / len(sample)
        ids_there = min(TIMELINE_MAX, ids_here * (TARGET_FOLLOWS / TARGET_USERS) / (n_follows / n_users))
        at_timelines = (per_timeline / max(1.0, ids_here)) * ids_there * TARGET_USERS
        print(
            f"at {TARGET_USERS:,} users and {TARGET_FOLLOWS:,} follows: RocksDB ~{mib(at_rocksdb)}, "
            f"Redis ~{mib(at_graph + at_other)} without timelines (graph {mib(at_graph)}, "
            f"{args.tweets_per_user} tweets per user kept), "
            f"+{mib(at_timelines)} with every user's timeline materialised (~{ids_there:.0f} ids each)"
        )
        say(f"done in {time.monotonic() - began:.0f} s")
        failed = False
    except KeyboardInterrupt:
        failed = False
        raise
    except BaseException:
        if bench.log.exists():
            print(f"--- worker log tail ---\n{bench.log_tail()}", file=sys.stderr)
        raise
    finally:
        bench.stop(keep=failed)


if __name__ == "__main__":
    main()
