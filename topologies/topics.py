"""Source and sink topics of the contract. Messages stay raw bytes: the parser decodes them."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from faust.types import TP, StreamT, TopicT
from mode.types.signals import BaseSignalT
from prometheus_client import Gauge

from streams.app import app, settings
from streams.features.vector import FamilyUpdate
from streams.ingest.schemas import SINK_TOPICS, SOURCE_TOPICS
from streams.runtime.batch import BATCH_MAX, S, run_batch
from streams.runtime.batch_transport import RecordBatch, batch_topic
from streams.runtime.metrics import REGISTRY
from streams.runtime.sink import SinkBatch
from streams.runtime.topic_admin import CHANGELOG_CONFIG
from streams.serving.connection import REDIS_UNAVAILABLE
from streams.state.kafka_changelog import KafkaChangelog, StoreUnrecoverable
from streams.state.node_state import NodeState, register

log = logging.getLogger(__name__)
# How long a node waits before retrying a batch that Redis could not take, and at most before
# retrying one that failed otherwise (doubling from 1 s).
REDIS_RETRY_S = 1.0
MAX_RETRY_S = 30.0


def retry_wait_s(exc: Exception, attempt: int) -> float:
    if isinstance(exc, REDIS_UNAVAILABLE):
        return REDIS_RETRY_S
    return min(MAX_RETRY_S, 2.0**attempt)


def _raw_topic(name: str, partitions: int | None = None) -> TopicT:
    """Raw-bytes messages; agents reading the topic get them in `RecordBatch`es (one Faust event
    per fetched batch: Faust's per-message cost is paid per batch, see streams/batch_transport)."""
    return batch_topic(app, name, max_records=BATCH_MAX, partitions=partitions)


source_topics: dict[str, TopicT] = {name: _raw_topic(name) for name in SOURCE_TOPICS}
sink_topics: dict[str, TopicT] = {name: _raw_topic(name) for name in SINK_TOPICS}


def internal_topic(route: str) -> TopicT:
    """A topic between nodes, keyed for the node that reads it; values are normalised events."""
    # The partition count is explicit: nodes that read several routes rely on partition N of
    # each holding the same keys, and a broker's auto-created default could differ.
    return _raw_topic(f"{app.conf.id}-{route}", partitions=settings.partitions)


# Where the parser sends each applied event so that it reaches the partition that owns its key.
# Events keep their `event_id`, so a node that receives a re-sent event recognises it.
ROUTES: dict[str, tuple[tuple[TopicT, str], ...]] = {
    "engagement_events": (
        (internal_topic("engagements-by-tweet"), "tweet_id"),
        (internal_topic("engagements-by-author"), "author_id"),
        (internal_topic("engagements-by-user"), "user_id"),
    ),
    "content_events": ((internal_topic("content-by-author"), "author_id"),),
    "user_activity_events": ((internal_topic("activity-by-user"), "user_id"),),
    # A list-valued key field sends one message per element (see topologies.parser.forward).
    "real_time_signals": ((internal_topic("signals-by-tweet"), "tweet_ids"),),
    "social_graph_events": (
        (internal_topic("graph-by-follower"), "src_user_id"),
        (internal_topic("graph-by-followee"), "dst_user_id"),
    ),
}


# Every family of an entity's features goes here, keyed by entity, for the feature updater.
feature_updates = internal_topic("feature-updates")


def send_family(outputs: SinkBatch, update: FamilyUpdate) -> None:
    """An entity's feature family: to the feature updater, or, when it is the entity's only
    family (`author`, `user_author`), straight to `real_time_features` as the whole vector."""
    if update.is_whole_vector:
        features_topic = sink_topics["real_time_features"]
        outputs.add_vector(features_topic, update.entity_type, update.entity_id, update.ts, update.features)
    else:
        outputs.add(feature_updates, update.key, update.to_json())


async def stop_worker(where: str, exc: StoreUnrecoverable) -> None:
    """A store cannot be restored: Faust would restart the agent (or task) and carry on, so the
    worker stops instead, with the reason, rather than answer from incomplete state."""
    log.critical("%s: %s; the worker stops", where, exc)
    await app.crash(exc)


async def open_or_stop(state: NodeState, tp: TP, where: str) -> None:
    try:
        await state.open([tp])
    except StoreUnrecoverable as exc:
        await stop_worker(where, exc)
        raise


def batch_agent(topic: TopicT, name: str, process_batch: Callable[[RecordBatch], Awaitable[None]]) -> None:
    """Register agent `name` on `topic`: it hands each `RecordBatch` to `process_batch`, in order."""

    async def agent(stream: StreamT[RecordBatch]) -> None:
        async for records in stream:
            for attempt in itertools.count():
                try:
                    await process_batch(records)
                    break
                except StoreUnrecoverable as exc:
                    await stop_worker(name, exc)
                    raise
                except Exception as exc:
                    # The same batch again, never the next one: Faust's stream acks the batch an
                    # agent crashes on (in a `finally`), so a crash would commit past its effects.
                    # A stuck batch shows as its partition's lag. A partition revoked meanwhile is
                    # its new owner's to repeat, from the committed offset.
                    if records.tp not in app.consumer.assignment():
                        break
                    wait = retry_wait_s(exc, attempt)
                    if isinstance(exc, REDIS_UNAVAILABLE):
                        log.warning("%s: Redis is unreachable (%s); retrying the batch", name, exc)
                    else:
                        log.exception("%s: the batch failed; retrying it in %.0f s", name, wait)
                    await asyncio.sleep(wait)

    app.agent(topic, name=name)(agent)


def node_agent(
    topic: TopicT,
    name: str,
    state: NodeState,
    select: Callable[[NodeState, RecordBatch], S],
    work: Callable[[S, SinkBatch], Awaitable[None]],
) -> None:
    """Register agent `name` of a stateful node: each batch runs `streams.runtime.batch.run_batch`,
    so the node module only says what its batch does (`work`)."""

    async def process_batch(records: RecordBatch) -> None:
        await run_batch(state, records, select, work)

    batch_agent(topic, name, process_batch)


CHANGELOGS: list[TopicT] = []
# Every stateful node, with the input topics whose partitions its stores follow.
STATEFUL: list[tuple[NodeState, frozenset[str]]] = []


def _changelog(name: str, inputs: Sequence[str]) -> KafkaChangelog:
    topic = _raw_topic(name, partitions=settings.partitions)
    CHANGELOGS.append(topic)
    return KafkaChangelog(topic, settings.bootstrap_servers, settings.partitions, inputs)


def node_state(node: str, inputs: Sequence[str], copartitioned: bool = False) -> NodeState:
    """A node's partition stores, with their changelogs, forgotten when partitions are revoked,
    and with `HOMEMIXER_STANDBY_REPLICAS` warm copies of the partitions next to each owned one.

    A node with stores of one input (or one store per partition for all its inputs, when
    copartitioned) has one changelog, `<app id>-<node>-changelog`; a node with stores of several
    inputs has one per input, `<app id>-<node>-<input>-changelog`, so that each changelog
    partition holds one store's records and that store's snapshot lets the records before it go."""
    changelog_of: Callable[[str], KafkaChangelog]
    if copartitioned or len(inputs) == 1:
        shared = _changelog(f"{app.conf.id}-{node}-changelog", inputs)

        def changelog_of(topic: str) -> KafkaChangelog:
            return shared  # a copartitioned node's stores also hold topics its inputs do not list

    else:
        per_input = {
            topic: _changelog(
                f"{app.conf.id}-{node}-{topic.removeprefix(f'{app.conf.id}-')}-changelog", [topic]
            )
            for topic in inputs
        }
        changelog_of = per_input.__getitem__
    state = register(
        NodeState(
            node,
            settings.data_dir,
            settings.dedup_retention_s * 1000,
            copartitioned,
            changelog_of,
            settings.snapshot_min_bytes,
        )
    )

    def on_revoked(sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any) -> None:
        revoked: set[TP] = args[0] if args else kwargs["revoked"]
        state.forget(revoked)

    app.on_partitions_revoked.connect(on_revoked)
    STATEFUL.append((state, frozenset(inputs)))
    if settings.standby_replicas > 0:
        app.timer(STANDBY_INTERVAL_S, name=f"standby.{node}")(warm_standbys(state, inputs))
    return state


# Standbys lag the owner by at most this, plus the replay of what arrived meanwhile.
STANDBY_INTERVAL_S = 2.0


STANDBY_PARTITIONS = Gauge(
    "homemixer_standby_partitions",
    "Partitions of a node this worker keeps warm standby copies of.",
    ["node"],
    registry=REGISTRY,
)


def standby_partitions(owned: set[int], partitions: int, replicas: int) -> set[int]:
    """The partitions after each owned one (wrapping around), up to `replicas`, not owned here."""
    return {(p + i) % partitions for p in owned for i in range(1, replicas + 1)} - owned


def warm_standbys(state: NodeState, inputs: Sequence[str]) -> Callable[[], Awaitable[None]]:
    async def warm() -> None:
        assignment = app.consumer.assignment()
        for topic in inputs:
            owned = {tp.partition for tp in assignment if tp.topic == topic}
            if not owned:
                continue
            spare = standby_partitions(owned, settings.partitions, settings.standby_replicas)
            await state.warm(TP(topic, p) for p in sorted(spare))
        STANDBY_PARTITIONS.labels(state.name).set(state.standby_count)

    return warm


def topic_configs() -> dict[str, Mapping[str, str]]:
    """Topic settings to create topics with, by name: the changelogs'."""
    return {topic.get_topic_name(): CHANGELOG_CONFIG for topic in CHANGELOGS}


# How soon after an assignment a worker starts to catch its new partitions' stores up.
RESTORE_INTERVAL_S = 0.5


def assigned_stores(assignment: Iterable[TP]) -> Iterator[tuple[NodeState, TP]]:
    """Each stateful node with each assigned partition that has a store of that node."""
    ordered = sorted(assignment)
    for state, inputs in STATEFUL:
        for tp in ordered:
            if tp.topic in inputs:
                yield state, tp


def stores_behind() -> dict[str, int]:
    """Per node, how many of this worker's assigned partitions have a store not open and current."""
    behind = {state.name: 0 for state, _ in STATEFUL}
    for state, tp in assigned_stores(app.consumer.assignment()):
        if state.opened(tp) is None:
            behind[state.name] += 1
    return behind


async def restore_assigned_stores() -> None:
    """Open every assigned partition's store, replaying the changelog records it lacks, when it is
    assigned rather than at its first batch: a worker is ready (GET /readyz) with its state
    current, and a partition no event has reached yet is readable (GET /state/users)."""
    # A loop, not a timer: a worker's first pass creates every store (tens of milliseconds each),
    # longer than the interval, and a timer would warn that it overlaps itself.
    while True:
        # While the assignment changes, wait for the new one.
        if not app.rebalancing:
            for state, tp in assigned_stores(app.consumer.assignment()):
                if state.opened(tp) is None:
                    async with state.lock(tp):
                        await open_or_stop(state, tp, f"restore of {state.name}")
        await asyncio.sleep(RESTORE_INTERVAL_S)


app.task(restore_assigned_stores)


def all_topic_names() -> list[str]:
    return [*SOURCE_TOPICS, *SINK_TOPICS, *internal_topic_names()]


def internal_topic_names() -> list[str]:
    """The topics between nodes and the changelogs: this app id's, derived from its sources."""
    internal = [t.get_topic_name() for routes in ROUTES.values() for t, _ in routes]
    internal.append(feature_updates.get_topic_name())
    changelogs = [t.get_topic_name() for t in CHANGELOGS]
    return [*internal, *changelogs]


def app_topic_names() -> list[str]:
    """Every topic of this app id, to delete on `homemixer reset`: the internal ones and the
    one Faust's leader assignor creates (faust/assignor/leader_assignor.py names it so)."""
    return [*internal_topic_names(), f"{app.conf.id}-__assignor-__leader"]


def snapshot_index_groups(partitions_of: Callable[[str], int]) -> list[str]:
    """The snapshot index group of every store the stateful nodes may have kept, given each
    input topic's partition count."""
    groups = {
        group
        for state, inputs in STATEFUL
        for topic in sorted(inputs)
        for p in range(partitions_of(topic))
        if (group := state.snapshot_index_group(TP(topic, p))) is not None
    }
    return sorted(groups)
