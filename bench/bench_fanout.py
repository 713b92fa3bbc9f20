"""Fanout deliveries per second through `TimelineCache.fanout_many`, against Redis's own ZADD rates.

    python -m bench.bench_fanout [TWEETS] [FOLLOWERS] [TWEETS_PER_CALL]

Starts its own redis-server. A delivery is one tweet into one follower's timeline; the
followers' timelines are materialised beforehand, holding 0, 400 or 800 (the cap: every insert
also trims) older tweets. Side by side in one run:

- ours: `TimelineCache.fanout_many` (Lua, existence check, trim);
- naive: pipelined ZADD + ZREMRANGEBYRANK from redis-py, what the Lua scripts replace;
- native: `redis-benchmark -P 64` doing plain ZADDs of new members into the same number of
  timelines holding as many tweets (C client, no existence check, no trim): the fair ceiling;
- `redis-benchmark -P 64 -n 1000000 -q -t zadd`: the ceiling the brief names. Without `-r` its
  ZADDs all re-add the same member to a one-member set, so they are no-ops on hot memory.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import time

from redis.asyncio import Redis

from streams.dev.embedded import start_redis
from streams.serving.keys import timeline_key
from streams.snowflake import SnowflakeGenerator
from streams.timelines.cache import TimelineCache

NOW_MS = 1_763_700_000_000
TIMELINE_MAX = 800
# Timeline sizes before a run: empty (materialised only), half full, full. Active users'
# timelines are mostly the last two.
PREFILLS = (0, TIMELINE_MAX // 2, TIMELINE_MAX)
# The naive baseline is slow; fewer tweets measure its rate well enough.
NAIVE_TWEETS = 20
# Followers per naive-baseline pipeline, as in FIELD_NOTES' measurement.
NAIVE_PIPELINE = 1000
BENCH_REQUESTS = 1_000_000
# Enough requests for a steady rate; half the brief's million keeps the run under a minute.
NATIVE_REQUESTS = 500_000
# Benchmark scaffolding, not project keys. redis-benchmark spells __rand_int__ as 12 digits.
TEMPLATE_KEY = "bench:template"
NATIVE_PREFIX = "bench:tl:"
NATIVE_KEY = NATIVE_PREFIX + "{:012d}"
RATE = re.compile(r"([0-9.]+) requests per second")


async def fill(client: Redis, keys: list[str], prefill: int) -> None:
    """Each key becomes a timeline holding `prefill` older tweets: one built, the rest copied."""
    await client.flushdb()
    gen = SnowflakeGenerator(worker=2)
    await TimelineCache(client, TIMELINE_MAX).replace(
        0, [gen.next_id(NOW_MS - 86_400_000 + i) for i in range(prefill)]
    )
    await client.rename(timeline_key(0), TEMPLATE_KEY)
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.copy(TEMPLATE_KEY, key)
        await pipe.execute()


async def measure_ours(
    client: Redis, prefill: int, tweets: list[int], followers: list[int], per_call: int
) -> float:
    await fill(client, [timeline_key(user) for user in followers], prefill)
    store = TimelineCache(client, TIMELINE_MAX)
    await store.fanout(tweets[0] - 1, followers[:10])  # warm up: scripts loaded, a connection open
    start = time.perf_counter()
    delivered = 0
    for i in range(0, len(tweets), per_call):
        delivered += await store.fanout_many([(t, followers) for t in tweets[i : i + per_call]])
    elapsed = time.perf_counter() - start
    assert delivered == len(tweets) * len(followers), delivered
    held = await client.zcard(timeline_key(followers[-1]))
    assert held == min(prefill + len(tweets), TIMELINE_MAX) + 1, held  # + the sentinel
    return delivered / elapsed


async def measure_naive(client: Redis, tweets: list[int], followers: list[int]) -> float:
    await fill(client, [timeline_key(user) for user in followers], TIMELINE_MAX)
    start = time.perf_counter()
    for tweet_id in tweets:
        for i in range(0, len(followers), NAIVE_PIPELINE):
            async with client.pipeline(transaction=False) as pipe:
                for user in followers[i : i + NAIVE_PIPELINE]:
                    key = timeline_key(user)
                    pipe.zadd(key, {str(tweet_id): tweet_id})
                    pipe.zremrangebyrank(key, 0, -(TIMELINE_MAX + 1))
                await pipe.execute()
    return len(tweets) * len(followers) / (time.perf_counter() - start)


def redis_benchmark(port: int, *args: str) -> float | None:
    """The requests/s redis-benchmark reports, or None without redis-benchmark."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    cmd = [binary, "-p", str(port), "-P", "64", "-q", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    # -q prints progress lines ending in \r, then the final "...: 406504.06 requests per second, ..."
    rates = RATE.findall(out)
    return float(rates[-1]) if rates else None


async def measure_native(client: Redis, port: int, prefill: int, n_timelines: int) -> float | None:
    await fill(client, [NATIVE_KEY.format(i) for i in range(n_timelines)], prefill)
    # Key, score and member each get their own random number below n_timelines: new members,
    # newer than the prefilled tweets, spread over all the timelines.
    member = "1870000__rand_int__"
    return redis_benchmark(
        port,
        "-n",
        str(NATIVE_REQUESTS),
        "-r",
        str(n_timelines),
        "ZADD",
        NATIVE_PREFIX + "__rand_int__",
        member,
        member,
    )


def row(label: str, rate: float) -> None:
    print(f"  {label:<62}{rate:>12,.0f}")


async def run(n_tweets: int, n_followers: int, per_call: int, port: int) -> None:
    gen = SnowflakeGenerator(worker=1)
    tweets = [gen.next_id(NOW_MS + i) for i in range(n_tweets)]
    followers = list(range(1_000_000, 1_000_000 + n_followers))
    client = Redis(host="127.0.0.1", port=port)
    try:
        batched = {p: await measure_ours(client, p, tweets, followers, per_call) for p in PREFILLS}
        single = {p: await measure_ours(client, p, tweets, followers, 1) for p in PREFILLS}
        naive = await measure_naive(client, tweets[:NAIVE_TWEETS], followers)
        native = {p: await measure_native(client, port, p, n_followers) for p in PREFILLS}
        await client.flushdb()
    finally:
        await client.aclose()
    ceiling = redis_benchmark(port, "-n", str(BENCH_REQUESTS), "-t", "zadd")

    print(f"fanout of {n_tweets} tweets x the same {n_followers} followers; timelines capped at")
    print(f"{TIMELINE_MAX}, holding N older tweets; deliveries (one tweet into one timeline) per second")
    for prefill in PREFILLS:
        row(f"ours: fanout_many, {per_call} tweets per call, N={prefill}", batched[prefill])
        row(f"ours: fanout_many, 1 tweet per call, N={prefill}", single[prefill])
    row(f"naive: redis-py pipelined ZADD + ZREMRANGEBYRANK, N={TIMELINE_MAX}", naive)
    for prefill, rate in native.items():
        if rate is not None:
            row(f"native: redis-benchmark -P 64 ZADD new members, N={prefill}", rate)
    if ceiling is None:
        print("  redis-benchmark: unavailable (no redis-benchmark on PATH), so no ratios")
        return
    row(f"redis-benchmark -P 64 -n {BENCH_REQUESTS} -q -t zadd (a no-op ZADD)", ceiling)
    print("ratios: ours / -t zadd (target >= 0.50); ours / native ZADD into the same timelines")
    for prefill in PREFILLS:
        fair = native[prefill]
        for label, rate in ((f"{per_call} per call", batched[prefill]), ("1 per call", single[prefill])):
            vs_native = f"{rate / fair:.2f}" if fair else "n/a"
            print(f"  N={prefill}, {label}: {rate / ceiling:.2f}; {vs_native}")
    print(f"  naive: {naive / ceiling:.2f}")


def main() -> None:
    args = [int(a) for a in sys.argv[1:]]
    n_tweets, n_followers, per_call = (args + [200, 5000, 10][len(args) :])[:3]
    server = start_redis()
    try:
        asyncio.run(run(n_tweets, n_followers, per_call, server.port))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
