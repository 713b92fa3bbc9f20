"""Events/s through one worker process: Faust per message against Faust with batch delivery.

python -m bench.bench_throughput [--events N] [--naive-events N] [--broker tansu|kafka]

Starts its own broker (Tansu, in memory, unless `--broker kafka` or HOMEMIXER_TEST_BROKER=kafka
chooses Apache Kafka, tests/kafka_broker.py), produces N ~100-byte JSON engagement events into a
4-partition topic with confluent-kafka, then times, one after another and each in a process of
its own, how fast a consumer gets through that backlog:

  raw         aiokafka `getmany(max_records=10000)`, records counted only (the ceiling)
  naive       a Faust agent doing `table[key] += 1` per event on a RocksDB table (the baseline)
  batch       a Faust agent on `streams.runtime.batch_transport` doing what the parser node does with a
              batch (`streams.ingest.parser.parse` and dedup by event id per record, then one
              `NodeState.commit`: a changelog record, then one RocksDB WriteBatch with the
              offset); no outputs are sent
  batch-nocl  the same without the changelog (state committed to RocksDB only)
  batch-0     the same transport, the agent only counting records (what Faust itself costs)
  batch-out   batch, plus what the parser node sends: each applied engagement to its three
              routes through `streams.runtime.sink.SinkBatch` (the workers' librdkafka producer),
              awaited before the state commit

Each rate is measured from the first event the consumer sees to its last, so worker start-up and
group joins are excluded. The naive agent gets a shorter backlog (it is slower). After the batch
run, the Kafka offsets its group committed are compared with the topic's end offsets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from tests.brokers import BROKERS, broker_kind

TOPIC = "engagement_events"
PARTITIONS = 4
FAST_REBALANCE = {
    "broker_rebalance_timeout": 3.0,
    "broker_session_timeout": 6.0,
    "broker_heartbeat_interval": 1.0,
}
CHILD_TIMEOUT_S = 120.0
COMMIT_CHECK_TIMEOUT_S = 15.0


# ---------------------------------------------------------------------------------------------
# Children: each measures one consumer and writes {"events": n, "seconds": s, ...} to a file.


def _report(path: Path, **result: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.rename(path)


class Clock:
    """Counts events from the first one seen; the rate leaves out the first delivery itself.

    Besides wall-clock time it takes the process's CPU time (all its threads), which other load on
    the machine disturbs far less: events per CPU-second is what one otherwise idle core would do.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.first_n = 0
        self.started = self.last = 0.0
        self.cpu_started = self.cpu_last = 0.0

    def add(self, n: int) -> bool:
        now, cpu = time.perf_counter(), time.process_time()
        if self.count == 0:
            self.started, self.cpu_started, self.first_n = now, cpu, n
        self.count += n
        self.last, self.cpu_last = now, cpu
        return self.count >= self.target

    def result(self) -> dict[str, Any]:
        return {
            "events": self.count - self.first_n,
            "seconds": self.last - self.started,
            "cpu_seconds": self.cpu_last - self.cpu_started,
            "total": self.count,
        }


def child_raw(port: int, target: int, out: Path) -> None:
    from aiokafka import AIOKafkaConsumer

    async def run() -> None:
        consumer = AIOKafkaConsumer(
            TOPIC,
            bootstrap_servers=f"127.0.0.1:{port}",
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        clock = Clock(target)
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                n = sum(len(records) for records in batches.values())
                if n and clock.add(n):
                    break
        finally:
            await consumer.stop()
        _report(out, **clock.result())

    asyncio.run(run())


def _faust_app(app_id: str, broker: str, data_dir: Path) -> Any:
    import faust

    return faust.App(
        app_id,
        broker=broker,
        datadir=str(data_dir / app_id),
        store="rocksdb://",
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        web_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        **FAST_REBALANCE,
    )


def _run_worker(app: Any) -> None:
    from faust.worker import Worker

    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


def child_naive(port: int, target: int, out: Path, data_dir: Path) -> None:
    from faust import Stream

    app = _faust_app("bench-naive", f"kafka://127.0.0.1:{port}", data_dir)
    topic = app.topic(TOPIC, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    table = app.Table("counts", default=int, partitions=PARTITIONS)
    clock = Clock(target)

    async def count(stream: Stream[bytes]) -> None:
        async for key, _value in stream.items():
            table[key.decode()] += 1
            if clock.add(1) and not out.exists():
                _report(out, **clock.result())

    app.agent(topic, name="naive")(count)
    _run_worker(app)


# Child modes of the batch transport: (app id, parse and commit state, with a changelog, send
# each applied event to its routes as topologies/parser.py does).
BATCH_MODES = {
    "batch": ("bench-batch", True, True, False),
    "batch-nocl": ("bench-batch-nocl", True, False, False),
    "batch-0": ("bench-batch-0", False, False, False),
    "batch-out": ("bench-batch-out", True, True, True),
}
# ROUTES["engagement_events"] of topologies/topics.py: each applied event goes to three topics.
ROUTE_KEYS = ("tweet_id", "author_id", "user_id")


def route_topic_name(key_field: str) -> str:
    return f"bench-engagements-by-{key_field.removesuffix('_id')}"


def changelog_topic_name(app_id: str) -> str:
    return f"{app_id}-parser-changelog"


def child_batch(port: int, target: int, out: Path, data_dir: Path, mode: str) -> None:
    from faust import Stream

    from streams.ingest.codec import EventDecoder
    from streams.ingest.parser import ParserLimits, SourceEvent, parse
    from streams.runtime.batch_transport import RecordBatch, batch_broker_url, batch_topic
    from streams.runtime.sink import SinkBatch
    from streams.state.dedup import Seen
    from streams.state.kafka_changelog import KafkaChangelog
    from streams.state.node_state import NodeState

    app_id, parse_events, with_changelog, with_outputs = BATCH_MODES[mode]
    app = _faust_app(app_id, batch_broker_url(f"kafka://127.0.0.1:{port}"), data_dir)
    topic = batch_topic(app, TOPIC)
    changelog = None
    if with_changelog:
        changelog_topic = batch_topic(app, changelog_topic_name(app_id), partitions=PARTITIONS)
        changelog = KafkaChangelog(changelog_topic, f"127.0.0.1:{port}", PARTITIONS)
    changelog_of = None if changelog is None else (lambda _topic: changelog)
    state = NodeState("parser", data_dir / app_id / "nodes", 24 * 3600 * 1000, changelog_of=changelog_of)
    # Raw-bytes topics declared as the topology declares them (topologies/topics.py).
    routes = [
        (batch_topic(app, route_topic_name(key_field), partitions=PARTITIONS), key_field)
        for key_field in (ROUTE_KEYS if with_outputs else ())
    ]
    limits = ParserLimits(max_event_bytes=65536, max_future_skew_ms=3_600_000)
    decoder = EventDecoder()
    clock = Clock(target)
    counts = {"batches": 0, "applied": 0, "other": 0}

    async def apply(batch: RecordBatch) -> None:
        # What topologies/parser.py's process_batch does, outputs (sink sends, Redis) aside.
        tp = batch.tp
        await state.open({tp})
        applied_offset = state.store(tp).applied_offset(tp.topic)
        dedup = state.dedup(tp)
        now_ms = int(time.time() * 1000)
        outputs = SinkBatch()
        last = -1
        for record in batch.records:
            if record.offset <= applied_offset:
                continue
            last = record.offset
            result = parse(tp.topic, record.key, record.value, now_ms=now_ms, limits=limits, decoder=decoder)
            if isinstance(result, SourceEvent) and dedup.check(result.event_id, result.ts) is Seen.FIRST:
                counts["applied"] += 1
                for route, key_field in routes:
                    outputs.add(route, str(result.fields[key_field]), result.fields)
            else:
                counts["other"] += 1
        await outputs.send_and_wait()
        if last >= 0:
            await state.commit({tp: last})

    async def consume(stream: Stream[RecordBatch]) -> None:
        async for batch in stream:
            counts["batches"] += 1
            if parse_events:
                await apply(batch)
            if clock.add(len(batch)) and not out.exists():
                _report(out, **clock.result(), **counts)

    app.agent(topic, name="batch")(consume)
    _run_worker(app)


# ---------------------------------------------------------------------------------------------
# Parent.


def produce(bootstrap: str, n: int) -> tuple[float, dict[int, int]]:
    """Produce `n` events; the rate, and each partition's end offset from the delivery reports.

    (The embedded broker's ListOffsets answers with a stale high watermark, so the end offsets
    come from what the broker acknowledged instead.)
    """
    from confluent_kafka import Producer

    from tests.fuzz import valid_event

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    ends = dict.fromkeys(range(PARTITIONS), 0)
    failures: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(str(err))
        elif msg.offset() + 1 > ends[msg.partition()]:
            ends[msg.partition()] = msg.offset() + 1

    base_ts = int(time.time() * 1000)
    payloads = [valid_event(TOPIC, i, base_ts + i // 1000) for i in range(n)]
    raws = [(key, orjson.dumps(event)) for key, event in payloads]
    start = time.perf_counter()
    for key, raw in raws:
        while True:
            try:
                producer.produce(TOPIC, raw, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(60) or failures:
        raise RuntimeError(f"not every event was delivered: {failures[:3]}")
    return n / (time.perf_counter() - start), ends


def committed_offsets(bootstrap: str, group: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def run_child(mode: str, port: int, target: int, work: Path, ends: dict[int, int]) -> dict[str, Any]:
    from streams.dev.embedded import terminate

    out = work / f"{mode}.json"
    log = work / f"{mode}.log"
    cmd = [sys.executable, "-m", "bench.bench_throughput", "--child", mode, "--port", str(port)]
    cmd += ["--target", str(target), "--work", str(work)]
    # `streams.runtime.sink` sends through the producer of the settings' broker: this bench's own.
    env = {**os.environ, "KAFKA_BROKER": f"kafka://127.0.0.1:{port}"}
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    try:
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        while not out.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"{mode} exited with {proc.returncode}; see {log}:\n{_tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{mode} gave no result within {CHILD_TIMEOUT_S} s:\n{_tail(log)}")
            time.sleep(0.1)
        result: dict[str, Any] = json.loads(out.read_text())
        if mode == "batch":
            result["commit_check"] = wait_for_commits(f"127.0.0.1:{port}", "bench-batch", ends)
        return result
    finally:
        terminate(proc, 20)


def wait_for_commits(bootstrap: str, group: str, ends: dict[int, int]) -> str:
    """Whether the worker's committed offsets reach the end of every partition (it commits each s)."""
    deadline = time.monotonic() + COMMIT_CHECK_TIMEOUT_S
    committed: dict[int, int] = {}
    while time.monotonic() < deadline:
        committed = committed_offsets(bootstrap, group)
        if committed == ends:
            return f"committed offsets = end offsets {sorted(ends.items())}"
        time.sleep(0.5)
    return f"MISMATCH: committed {sorted(committed.items())}, end offsets {sorted(ends.items())}"


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _rate(result: dict[str, Any]) -> float:
    return float(result["events"] / result["seconds"]) if result["seconds"] > 0 else float("nan")


def _cpu_rate(result: dict[str, Any]) -> float:
    cpu = result["cpu_seconds"]
    return float(result["events"] / cpu) if cpu > 0 else float("nan")


def main(events: int, naive_events: int, kind: str) -> None:
    from streams.runtime.topic_admin import ensure_topics
    from tests.brokers import start_test_broker

    work = Path(tempfile.mkdtemp(prefix="hm-bench-"))
    broker = start_test_broker(kind, work)
    print(f"broker: {kind}")
    bootstrap = f"127.0.0.1:{broker.port}"
    try:
        changelogs = [
            changelog_topic_name(app_id) for app_id, _, with_cl, _ in BATCH_MODES.values() if with_cl
        ]
        routes = [route_topic_name(key_field) for key_field in ROUTE_KEYS]
        ensure_topics(bootstrap, [TOPIC, *changelogs, *routes], PARTITIONS)
        produce_rate, ends = produce(bootstrap, events)
        print(f"load average before the runs: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        print(f"produced {sum(ends.values()):,} events into {PARTITIONS} partitions ({produce_rate:,.0f}/s)")
        runs = [
            ("raw", events, "aiokafka getmany(max_records=10000), no processing (ceiling)"),
            ("naive", naive_events, "Faust agent, per event table[key] += 1 on RocksDB (baseline)"),
            ("batch", events, "Faust agent on batch transport: parse + dedup + changelog + RocksDB"),
            ("batch-nocl", events, "Faust agent on batch transport: parse + dedup + RocksDB, no changelog"),
            ("batch-0", events, "Faust agent on batch transport: count records only"),
            ("batch-out", events, "Faust agent on batch transport: as batch, + 3 routed sends/event"),
        ]
        results: dict[str, dict[str, Any]] = {}
        for mode, target, label in runs:
            results[mode] = run_child(mode, broker.port, target, work, ends)
            r = results[mode]
            print(
                f"{label}: {_rate(r):,.0f} events/s, {_cpu_rate(r):,.0f} per CPU-second "
                f"({r['events']:,} events in {r['seconds']:.2f} s, {r['cpu_seconds']:.2f} CPU-s)"
            )
        print(f"load average after the runs: {os.getloadavg()[0]:.2f}")
        batch = results["batch"]
        print(
            f"batch: {batch['batches']:,} batch messages, mean {batch['total'] / batch['batches']:,.0f} "
            f"records; applied {batch['applied']:,}, not applied {batch['other']:,}"
        )
        print(f"batch commit check: {batch['commit_check']}")
        for mode, base in [
            ("batch", "naive"),
            ("batch", "raw"),
            ("batch-0", "raw"),
            ("batch-out", "naive"),
        ]:
            a, b = results[mode], results[base]
            print(
                f"ratio {mode} / {base}: {_rate(a) / _rate(b):.2f}x wall clock, "
                f"{_cpu_rate(a) / _cpu_rate(b):.2f}x per CPU-second"
            )
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--naive-events", type=int, default=30_000)
    parser.add_argument("--broker", choices=BROKERS, help="default: $HOMEMIXER_TEST_BROKER, else tansu")
    parser.add_argument("--child", choices=["raw", "naive", *BATCH_MODES])
    parser.add_argument("--port", type=int)
    parser.add_argument("--target", type=int)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    if args.child is None:
        main(args.events, args.naive_events, broker_kind(args.broker))
        return
    out = args.work / f"{args.child}.json"
    if args.child == "raw":
        child_raw(args.port, args.target, out)
    elif args.child == "naive":
        child_naive(args.port, args.target, out, args.work)
    else:
        child_batch(args.port, args.target, out, args.work, args.child)


if __name__ == "__main__":
    cli()
