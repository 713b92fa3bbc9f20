"""The `homemixer` command: `up` (everything on one machine), `worker`, `token`, `reset`, `feeds`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import TypeVar

import click
from redis.asyncio import Redis as AsyncRedis

from streams.settings import DEFAULT_WEB_PORT, Settings, unsafe_secret

# A cold worker joins the group and creates its topics in about 4 s on the embedded broker.
READY_TIMEOUT_S = 60.0


@click.group()
def cli() -> None:
    """homemixer: a real-time Home Mixer pipeline on Faust, RocksDB and Redis.

    Configuration is read from the environment (KAFKA_BROKER, REDIS_URL, HOMEMIXER_DATA_DIR,
    HOMEMIXER_SECRET, WEB_PORT, SCHEMA_REGISTRY_URL and the HOMEMIXER_* settings); see README.md.
    """


@cli.command()
@click.option("--loglevel", default="info", show_default=True, help="Faust log level.")
def worker(loglevel: str) -> None:
    """Run one worker of the consumer group (start more, anywhere, to scale out).

    Connects to KAFKA_BROKER and REDIS_URL, keeps its RocksDB state under HOMEMIXER_DATA_DIR
    and serves HTTP on WEB_PORT.
    """
    from faust.worker import Worker

    import topologies  # noqa: F401  (registers the agents and views)
    from streams.app import app, settings
    from streams.runtime.topic_admin import ensure_topics
    from topologies.topics import all_topic_names, topic_configs

    if (reason := unsafe_secret(settings)) is not None:
        raise click.ClickException(reason)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_topics(settings.bootstrap_servers, all_topic_names(), settings.partitions, configs=topic_configs())
    runner = Worker(app, loglevel=loglevel)
    # Faust's start-up spinner, at --loglevel warning or above, sets the root logger to DEBUG so
    # that every record turns it: every debug line of aiokafka and Faust was then built and
    # dropped, 5-10% of a busy worker's time.
    runner.spinner = None
    runner.execute_from_commandline()


@cli.command()
@click.argument("user_id", type=click.IntRange(min=1))
@click.option(
    "--ttl",
    type=click.IntRange(min=1),
    help="Seconds the token is valid for (default: HOMEMIXER_TOKEN_TTL_S, a day unless set).",
)
def token(user_id: int, ttl: int | None) -> None:
    """Print a bearer token for USER_ID, signed with HOMEMIXER_SECRET (its first secret)."""
    from streams.http.auth import mint_token

    settings = Settings.from_env()
    click.echo(mint_token(settings.secrets, user_id, settings.token_ttl_s if ttl is None else ttl))


@cli.command()
@click.option("--broker-port", type=int, help="Port of the embedded broker (default: a free one).")
@click.option("--redis-port", type=int, help="Port of the embedded Redis (default: a free one).")
@click.option("--web-port", type=int, help=f"HTTP port (default: WEB_PORT or {DEFAULT_WEB_PORT}).")
@click.option("--demo", is_flag=True, help="Feed a synthetic workload (follow graph, tweets, ...).")
@click.option("--demo-rate", default=200.0, show_default=True, help="Demo events per second.")
@click.option("--demo-users", default=1000, show_default=True, help="Users in the demo graph.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes of the group (one per core uses every core); worker i serves HTTP on "
    "the web port + i and keeps its state in <data dir>/w<i>.",
)
def up(
    broker_port: int | None,
    redis_port: int | None,
    web_port: int | None,
    demo: bool,
    demo_rate: float,
    demo_users: int,
    workers: int,
) -> None:
    """Run the whole system on this machine: broker, Redis, a worker and the web view.

    Starts a Kafka-protocol broker (Tansu, in memory) and a Redis on loopback unless KAFKA_BROKER
    or REDIS_URL name existing ones. Prints `broker:`, `redis:` and `web:` lines once ready.
    Ctrl-C stops everything it started.
    """
    from streams.dev.embedded import LOOPBACK, ChildServer, start_broker, start_redis, terminate_all

    children: list[ChildServer] = []
    worker_procs: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, _exit_on_signal)
    env = dict(os.environ)
    temp_dir: str | None = None
    try:
        if env.get("KAFKA_BROKER"):
            broker_addr = env["KAFKA_BROKER"].removeprefix("kafka://")
        else:
            broker = start_broker(broker_port)
            children.append(broker)
            broker_addr = f"{LOOPBACK}:{broker.port}"
            env["KAFKA_BROKER"] = f"kafka://{broker_addr}"
            env["HOMEMIXER_FAST_REBALANCE"] = "1"
        if env.get("REDIS_URL"):
            redis_url = env["REDIS_URL"]
        else:
            redis = start_redis(redis_port)
            children.append(redis)
            redis_url = f"redis://{LOOPBACK}:{redis.port}"
            env["REDIS_URL"] = redis_url + "/0"
        if "HOMEMIXER_DATA_DIR" not in env:
            # The embedded broker keeps nothing, so state from an earlier run would not match it.
            temp_dir = tempfile.mkdtemp(prefix="homemixer-")
            env["HOMEMIXER_DATA_DIR"] = temp_dir
        env.setdefault("HOMEMIXER_DEV_LOGIN", "1")
        port = web_port or int(env.get("WEB_PORT", DEFAULT_WEB_PORT))
        env["WEB_PORT"] = str(port)
        data_dir = Path(env["HOMEMIXER_DATA_DIR"])
        started = [_start_worker(env, data_dir, port, i, workers) for i in range(workers)]
        worker_procs.extend(proc for proc, _ in started)
        for i, (proc, log_path) in enumerate(started):
            _wait_ready(f"http://{LOOPBACK}:{port + i}/readyz", proc, log_path)
        click.echo(f"broker: {broker_addr}")
        click.echo(f"redis: {redis_url}")
        click.echo(f"web: http://{LOOPBACK}:{port}/", nl=True)
        for i, (_, log_path) in enumerate(started):
            click.echo(f"worker {i}: http://{LOOPBACK}:{port + i}/, log {log_path}", err=True)
        if demo:
            _start_demo(broker_addr, demo_rate, demo_users)
        while all(proc.poll() is None for proc in worker_procs):
            time.sleep(0.5)
        i, (proc, log_path) = next((i, w) for i, w in enumerate(started) if w[0].poll() is not None)
        raise click.ClickException(f"worker {i} exited with code {proc.returncode}; see {log_path}")
    except KeyboardInterrupt:
        click.echo("stopping...", err=True)
    finally:
        terminate_all(worker_procs, 15)
        for child in reversed(children):
            child.stop()
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _start_worker(
    env: dict[str, str], data_dir: Path, port: int, index: int, workers: int
) -> tuple[subprocess.Popen[bytes], Path]:
    """Worker `index` of `workers`: one alone keeps the data dir as it is; several each get a
    directory of their own (a RocksDB store is one process's) and the next web port."""
    own_dir = data_dir if workers == 1 else data_dir / f"w{index}"
    own_dir.mkdir(parents=True, exist_ok=True)
    log_path = own_dir / "worker.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker"],
        env={**env, "HOMEMIXER_DATA_DIR": str(own_dir), "WEB_PORT": str(port + index)},
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return proc, log_path


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(f"the worker exited during start-up; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise click.ClickException(f"the worker was not ready within {READY_TIMEOUT_S:.0f} s; see {log_path}")


def _start_demo(broker_addr: str, rate: float, users: int) -> None:
    from streams.dev.demo import run_demo

    thread = threading.Thread(target=run_demo, args=(broker_addr, rate, users), name="demo", daemon=True)
    thread.start()


@cli.command()
@click.option("--yes", is_flag=True, help="Delete without asking.")
def reset(yes: bool) -> None:
    """Delete everything derived under HOMEMIXER_APP_ID, to reprocess the sources from the start.

    Deletes the app's internal and changelog topics, its consumer group and snapshot index
    groups, HOMEMIXER_DATA_DIR and its Redis keys. Source and sink topics stay. Refuses while
    workers of the app id run (the group has members, or the data dir's stores are open).
    """
    import asyncio

    import topologies  # noqa: F401  (registers the nodes, whose topics and stores are deleted)
    from streams.app import settings
    from streams.ops.reset import KafkaReset, ResetPlan, held_locks, remove_data_dir, running_reason
    from streams.serving.keys import app_pattern
    from streams.serving.sweep import count_matching, unlink_matching
    from topologies.topics import CHANGELOGS, app_topic_names, snapshot_index_groups

    kafka = KafkaReset(settings.bootstrap_servers)
    if (reason := running_reason(kafka.members(settings.app_id), held_locks(settings.data_dir))) is not None:
        raise click.ClickException(reason)
    counts = kafka.partition_counts()
    changelogs = [t.get_topic_name() for t in CHANGELOGS]
    candidates = snapshot_index_groups(lambda topic: counts.get(topic, 0))
    pattern = app_pattern(settings.app_id)
    plan = ResetPlan(
        settings.app_id,
        [t for t in app_topic_names() if t in counts],
        kafka.groups(settings.app_id, changelogs, candidates),
        settings.data_dir if settings.data_dir.exists() else None,
        asyncio.run(_with_redis(settings, lambda r: count_matching(r, pattern))),
    )
    click.echo("\n".join(plan.describe()))
    if not yes:
        click.confirm("Delete all of this?", abort=True)
    kafka.delete_groups(plan.groups)
    click.echo(f"deleted {len(plan.groups)} consumer groups")
    kafka.delete_topics(plan.topics)
    click.echo(f"deleted {len(plan.topics)} topics")
    if plan.data_dir is not None:
        remove_data_dir(plan.data_dir)
        click.echo(f"deleted {plan.data_dir}")
    total = plan.redis_keys

    def progress(n: int) -> None:
        click.echo(f"redis: {n}/{total} keys unlinked")

    done = asyncio.run(_with_redis(settings, lambda r: unlink_matching(r, pattern, progress)))
    click.echo(f"reset done: {done} Redis keys unlinked")


@cli.group()
def feeds() -> None:
    """Materialise or drop home timelines in Redis (like Mastodon's `tootctl feeds`)."""


def _feed_users(user: int | None, all_users: bool) -> None:
    if (user is None) == (not all_users):
        raise click.UsageError("give exactly one of --user ID or --all")


@feeds.command("build")
@click.option("--user", type=click.IntRange(min=1), help="The user whose timeline to build.")
@click.option("--all", "all_users", is_flag=True, help="Every user the pipeline has seen.")
def feeds_build(user: int | None, all_users: bool) -> None:
    """Rebuild timelines from the follow graph and the authors' tweets, as a read rebuilds one."""
    import asyncio

    from streams.serving.view import ServingReads
    from streams.timelines.cache import TimelineCache
    from streams.timelines.reader import TimelineReader

    _feed_users(user, all_users)
    settings = Settings.from_env()

    async def build(redis: AsyncRedis) -> int:
        reads = ServingReads(redis)
        cache = TimelineCache(redis, settings.timeline_max)
        reader = TimelineReader(
            reads, cache, settings.partitions, settings.active_days, settings.timeline_max
        )
        users = [user] if user is not None else await reads.known_users()
        for done, user_id in enumerate(users, 1):
            context = await reads.user_context(user_id)
            await reader.rebuild(user_id, context.following, context.celebrities)
            if all_users:
                click.echo(f"built {done}/{len(users)} users")
        return len(users)

    built = asyncio.run(_with_redis(settings, build))
    click.echo(f"built {built} timelines")


@feeds.command("clear")
@click.option("--user", type=click.IntRange(min=1), help="The user whose timeline to drop.")
@click.option("--all", "all_users", is_flag=True, help="Every timeline.")
def feeds_clear(user: int | None, all_users: bool) -> None:
    """Drop materialised timelines; each is rebuilt when next read."""
    import asyncio

    from streams.timelines.cache import TimelineCache

    _feed_users(user, all_users)
    settings = Settings.from_env()

    async def clear(redis: AsyncRedis) -> int:
        cache = TimelineCache(redis, settings.timeline_max)
        if user is not None:
            return await cache.clear([user])
        return await cache.clear_all(lambda n: click.echo(f"cleared {n} timelines so far"))

    cleared = asyncio.run(_with_redis(settings, clear))
    click.echo(f"cleared {cleared} timelines")


T = TypeVar("T")


async def _with_redis(settings: Settings, body: Callable[[AsyncRedis], Awaitable[T]]) -> T:
    """`body` run with an asyncio client of the settings' Redis (or Redis Cluster), closed after it."""
    from streams.serving.connection import connect

    client = connect(settings.redis_url, settings.redis_cluster, max_connections=8, wait_s=30.0)
    try:
        return await body(client)
    finally:
        await client.aclose()


def main() -> None:
    cli(prog_name="homemixer")


if __name__ == "__main__":
    main()
