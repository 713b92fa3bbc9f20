"""Every knob of homemixer, read once from the environment.

The names are the contract's (../shared/CONTRACT.md, "Configuration"); defaults are named here so
that one place says what the system does when nothing is set.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BROKER = "kafka://127.0.0.1:9092"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_WEB_PORT = 6066
# Twitter's Home Mixer counts an author with 10k followers as too costly to push to.
DEFAULT_CELEBRITY_THRESHOLD = 10_000
# Mastodon caps home feeds at 800 entries; deeper pages come from a rebuild.
DEFAULT_TIMELINE_MAX = 800
DEFAULT_ACTIVE_DAYS = 30
DEFAULT_METRICS_WINDOW_S = 60
DEFAULT_GRACE_S = 10
# Public, so anyone can mint tokens with it: good for loopback only (`unsafe_secret`).
DEFAULT_SECRET = "dev-secret-change-me"
# A day: a person logs in about daily, and a leaked token, or one signed with a secret being
# rotated out, is good for at most that long.
DEFAULT_TOKEN_TTL_S = 24 * 3600
# A source partition silent this long stops holding windows open (CONTRACT.md, "Windows").
DEFAULT_IDLE_S = 10
DEFAULT_SNAPSHOT_MIN_BYTES = 64 * 1024 * 1024
# A tweet is at most 280 characters; 64 KiB leaves room for every optional field and then some.
DEFAULT_MAX_EVENT_BYTES = 64 * 1024
# Replays after a crash arrive within minutes; producer retries within hours. A day covers both.
DEFAULT_DEDUP_RETENTION_S = 24 * 3600
# An event stamped further ahead than this is a producer clock bug, not the future.
DEFAULT_MAX_FUTURE_SKEW_S = 3600
# Most engagement with a served tweet comes within minutes of serving; after this long a served
# item's outcome is taken as final and the calibration learns from it.
DEFAULT_CALIBRATION_LABEL_S = 600
DEFAULT_READ_RATE = 600
DEFAULT_POST_RATE = 60
# Likes and follows come faster than posts: a person working down a timeline, not a bot.
DEFAULT_ACTION_RATE = 300
# How often an open new-items stream looks for new items in its user's timeline.
DEFAULT_EVENTS_POLL_MS = 1000
DEFAULT_PARTITIONS = 4
# The Faust app id: the consumer group, the start of internal topic names and of Redis keys.
DEFAULT_APP_ID = "homemixer"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not an integer") from None


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value <= 0:
        raise SystemExit(f"{name}={value} must be positive")
    return value


def _secrets(env: Mapping[str, str]) -> tuple[str, ...]:
    """HOMEMIXER_SECRET: one secret, or several comma-separated while one is rotated in."""
    raw = env.get("HOMEMIXER_SECRET", "")
    if not raw.strip():
        return (DEFAULT_SECRET,)
    secrets = tuple(part.strip() for part in raw.split(","))
    if "" in secrets:
        raise SystemExit("HOMEMIXER_SECRET lists an empty secret (two commas, or one at an end)")
    return secrets


def app_id_from_env(env: Mapping[str, str] | None = None) -> str:
    """HOMEMIXER_APP_ID, which the Redis key layout reads without the rest of the settings."""
    env = os.environ if env is None else env
    return env.get("HOMEMIXER_APP_ID") or DEFAULT_APP_ID


@dataclass(frozen=True)
class Settings:
    broker: str = DEFAULT_BROKER
    redis_url: str = DEFAULT_REDIS_URL
    # REDIS_URL names any node of a Redis Cluster; keys are spread over its masters by hash slot.
    redis_cluster: bool = False
    data_dir: Path = field(default_factory=lambda: Path("./homemixer-data"))
    # Newest first: the first signs tokens, every one verifies them (rotation, README "Tokens").
    secrets: tuple[str, ...] = (DEFAULT_SECRET,)
    token_ttl_s: int = DEFAULT_TOKEN_TTL_S
    web_port: int = DEFAULT_WEB_PORT
    web_bind: str = "127.0.0.1"
    # How other workers reach this one, for requests routed to a key's owner; "" = derived.
    advertised_host: str = ""
    schema_registry_url: str | None = None
    celebrity_threshold: int = DEFAULT_CELEBRITY_THRESHOLD
    timeline_max: int = DEFAULT_TIMELINE_MAX
    active_days: int = DEFAULT_ACTIVE_DAYS
    metrics_window_s: int = DEFAULT_METRICS_WINDOW_S
    grace_s: int = DEFAULT_GRACE_S
    idle_s: int = DEFAULT_IDLE_S
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    dedup_retention_s: int = DEFAULT_DEDUP_RETENTION_S
    max_future_skew_s: int = DEFAULT_MAX_FUTURE_SKEW_S
    read_rate: int = DEFAULT_READ_RATE
    post_rate: int = DEFAULT_POST_RATE
    action_rate: int = DEFAULT_ACTION_RATE
    events_poll_ms: int = DEFAULT_EVENTS_POLL_MS
    partitions: int = DEFAULT_PARTITIONS
    # Short group-join timeouts: the embedded broker answers at once, and Faust's defaults make
    # the first join take 30 s there (FIELD_NOTES). Production keeps Faust's defaults.
    fast_rebalance: bool = False
    app_id: str = DEFAULT_APP_ID
    # Stops the ranking bandit and the calibration fit from learning: every bucket serves its best
    # strategy so far, and the scorer keeps its current calibration.
    freeze_learning: bool = False
    calibration_label_s: int = DEFAULT_CALIBRATION_LABEL_S
    # Standby copies each worker keeps warm next to each partition it owns (0: none).
    standby_replicas: int = 0
    # A store writes a snapshot once its changelog records since the last one exceed both this
    # and that snapshot's size: its changelog then stays within about twice the store's size.
    snapshot_min_bytes: int = DEFAULT_SNAPSHOT_MIN_BYTES
    # Each worker that accepts posts needs its own Snowflake worker id (0..1023).
    snowflake_worker: int = 0
    # `homemixer up` turns this on: POST /dev/login mints a token for any user, for local use only.
    dev_login: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            broker=env.get("KAFKA_BROKER", DEFAULT_BROKER),
            redis_url=env.get("REDIS_URL", DEFAULT_REDIS_URL),
            redis_cluster=env.get("HOMEMIXER_REDIS_CLUSTER", "") in ("1", "true", "yes"),
            data_dir=Path(env.get("HOMEMIXER_DATA_DIR", "./homemixer-data")),
            secrets=_secrets(env),
            token_ttl_s=_positive(env, "HOMEMIXER_TOKEN_TTL_S", DEFAULT_TOKEN_TTL_S),
            web_port=_int(env, "WEB_PORT", DEFAULT_WEB_PORT),
            web_bind=env.get("WEB_BIND", "127.0.0.1"),
            advertised_host=env.get("HOMEMIXER_ADVERTISED_HOST", ""),
            schema_registry_url=env.get("SCHEMA_REGISTRY_URL") or None,
            celebrity_threshold=_int(env, "HOMEMIXER_CELEBRITY_THRESHOLD", DEFAULT_CELEBRITY_THRESHOLD),
            timeline_max=_int(env, "HOMEMIXER_TIMELINE_MAX", DEFAULT_TIMELINE_MAX),
            active_days=_int(env, "HOMEMIXER_ACTIVE_DAYS", DEFAULT_ACTIVE_DAYS),
            metrics_window_s=_int(env, "HOMEMIXER_METRICS_WINDOW_S", DEFAULT_METRICS_WINDOW_S),
            grace_s=_int(env, "HOMEMIXER_GRACE_S", DEFAULT_GRACE_S),
            idle_s=_int(env, "HOMEMIXER_IDLE_S", DEFAULT_IDLE_S),
            max_event_bytes=_int(env, "HOMEMIXER_MAX_EVENT_BYTES", DEFAULT_MAX_EVENT_BYTES),
            dedup_retention_s=_int(env, "HOMEMIXER_DEDUP_RETENTION_S", DEFAULT_DEDUP_RETENTION_S),
            max_future_skew_s=_int(env, "HOMEMIXER_MAX_FUTURE_SKEW_S", DEFAULT_MAX_FUTURE_SKEW_S),
            read_rate=_int(env, "HOMEMIXER_READ_RATE", DEFAULT_READ_RATE),
            post_rate=_int(env, "HOMEMIXER_POST_RATE", DEFAULT_POST_RATE),
            action_rate=_int(env, "HOMEMIXER_ACTION_RATE", DEFAULT_ACTION_RATE),
            events_poll_ms=_positive(env, "HOMEMIXER_EVENTS_POLL_MS", DEFAULT_EVENTS_POLL_MS),
            partitions=_int(env, "HOMEMIXER_PARTITIONS", DEFAULT_PARTITIONS),
            fast_rebalance=env.get("HOMEMIXER_FAST_REBALANCE", "") in ("1", "true", "yes"),
            app_id=app_id_from_env(env),
            freeze_learning=env.get("HOMEMIXER_FREEZE_LEARNING", "") in ("1", "true", "yes"),
            calibration_label_s=_int(env, "HOMEMIXER_CALIBRATION_LABEL_S", DEFAULT_CALIBRATION_LABEL_S),
            standby_replicas=_int(env, "HOMEMIXER_STANDBY_REPLICAS", 0),
            snapshot_min_bytes=_int(env, "HOMEMIXER_SNAPSHOT_MIN_BYTES", DEFAULT_SNAPSHOT_MIN_BYTES),
            snowflake_worker=_int(env, "HOMEMIXER_SNOWFLAKE_WORKER", 0),
            dev_login=env.get("HOMEMIXER_DEV_LOGIN", "") in ("1", "true", "yes"),
        )

    @property
    def bootstrap_servers(self) -> str:
        """KAFKA_BROKER (`kafka://h1:9092;h2:9092`, Faust's form) as Kafka clients take it."""
        return ",".join(part.split("://", 1)[-1] for part in self.broker.split(";"))

    @property
    def canonical_url(self) -> str:
        """This worker's web address as other workers use it (Faust routes requests there)."""
        host = self.advertised_host
        if not host:
            host = socket.gethostname() if self.web_bind in ("0.0.0.0", "::") else self.web_bind
        return f"http://{host}:{self.web_port}"


LOOPBACK_BINDS = frozenset({"127.0.0.1", "::1", "localhost"})


def unsafe_secret(settings: Settings) -> str | None:
    """Why this worker must not start, or None: its web server is reachable beyond loopback
    while it signs tokens with the public built-in secret (CONTRACT.md, CLI)."""
    # Every listed secret verifies, so the public one is as bad second as first.
    if settings.web_bind not in LOOPBACK_BINDS and DEFAULT_SECRET in settings.secrets:
        return (
            f"WEB_BIND={settings.web_bind} serves beyond loopback, but HOMEMIXER_SECRET is or lists the "
            "public built-in default: anyone could mint tokens. Set HOMEMIXER_SECRET to secrets of "
            "your own (e.g. `openssl rand -hex 32`) or bind to 127.0.0.1."
        )
    return None
