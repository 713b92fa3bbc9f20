"""The batch protocol of every stateful node, in one place: open, keep what is new, work, send,
commit.

Exactness after a crash rests on this order, so no node writes it out itself:
1. open the stores of the batch's partitions (catching up from the changelog);
2. keep only the records whose effects are not in the store yet (`fresh_events` for the
   internal topics; the parser, which reads raw source topics, passes `unapplied_records`);
3. the node's work: fold the events into the store's pending writes, queue its outputs, and make
   its Redis writes, each of them idempotent;
4. send every output and wait for the broker's acknowledgements;
5. commit the store: the changelog first, then RocksDB, atomically with the input offsets.
A crash before 5 repeats 3 and 4 on restart (an output may repeat, none is lost); a crash after
5 skips the batch. A failure in 2 to 5 (Redis unreachable, a send the broker refused, a bug)
drops the store's pending writes, and the node's agent retries the batch until it succeeds
(`topologies.topics.batch_agent`): never skipped, since a batch Faust saw fail counts as done.
Quix Streams gives this order one owner too (`checkpointing/checkpoint.py`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import orjson
from faust.types import TP
from prometheus_client import Histogram

from streams.runtime.batch_transport import KafkaRecord, RecordBatch
from streams.runtime.metrics import REGISTRY
from streams.runtime.sink import SinkBatch
from streams.state.node_state import NodeState
from streams.state.partition_store import PartitionStore

# The field the parser stamps on forwarded events: [source partition, source offset, index].
SOURCE_POSITION = "_source_position"
# Records per delivered batch: big enough to amortise a state commit (and Faust's per-message
# machinery, which runs once per batch), small enough that a batch is a few ms of work.
BATCH_MAX = 2000
# A node's fixed cost per batch (commit, changelog, send and wait, Redis round trips) is paid
# per batch: small batches under load are where per-event cost grows.
BATCH_SIZE_BUCKETS = (1, 10, 100, 500, 1000, BATCH_MAX)

BATCH_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

BATCH_RECORDS = Histogram(
    "homemixer_batch_records",
    "Records per batch a node processed.",
    ["node"],
    buckets=BATCH_SIZE_BUCKETS,
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "homemixer_batch_seconds",
    "Wall-clock time of a node's batch by step: work (its state and Redis), send (outputs "
    "acknowledged), commit (changelog record, then RocksDB).",
    ["node", "step"],
    buckets=BATCH_SECONDS_BUCKETS,
    registry=REGISTRY,
)


class Selected(Protocol):
    """What step 2 keeps of a batch: at least the last input offset of each partition it read."""

    @property
    def last_offsets(self) -> dict[TP, int]: ...


S = TypeVar("S", bound=Selected)


async def run_batch(
    state: NodeState,
    records: RecordBatch,
    select: Callable[[NodeState, RecordBatch], S],
    work: Callable[[S, SinkBatch], Awaitable[None]],
) -> None:
    """One batch of a stateful node, in the order the module docstring gives."""
    started = time.perf_counter()
    async with state.lock(records.tp):
        await state.open([records.tp])
        try:
            selected = select(state, records)
            outputs = SinkBatch()
            await work(selected, outputs)
            worked = time.perf_counter()
            await outputs.send_and_wait()
            sent = time.perf_counter()
            await state.commit(selected.last_offsets)
        except Exception:
            # The batch may be half folded into the store's pending writes and caches, or half
            # committed: reopened from RocksDB and the changelog, the store takes it again whole
            # when the agent retries it.
            state.forget([records.tp])
            raise
    done = time.perf_counter()
    node = state.name
    BATCH_RECORDS.labels(node).observe(len(records.records))
    for step, seconds in (("work", worked - started), ("send", sent - worked), ("commit", done - sent)):
        BATCH_SECONDS.labels(node, step).observe(seconds)


async def run_tick(
    state: NodeState, tp: TP, work: Callable[[TP, PartitionStore, SinkBatch], Awaitable[bool]]
) -> None:
    """Work on a partition between its batches, such as closing windows once a source partition
    has gone quiet, in the same order: `work` (True when it changed the store), send and wait,
    commit with the partition's offset unchanged. Skipped unless this worker has the store open
    and current (the next batch opens it)."""
    async with state.lock(tp):
        store = state.opened(tp)
        if store is None:
            return
        outputs = SinkBatch()
        if await work(tp, store, outputs):
            await outputs.send_and_wait()
            await state.commit({tp: state.applied_offset(tp)})


@dataclass
class PartitionBatch:
    """The new events of one input partition in one batch, oldest first."""

    tp: TP
    store: PartitionStore
    events: list[dict[str, Any]] = field(default_factory=list)
    # The source partition each event came from (the parser's stamp; 0 for unstamped events).
    sources: list[int] = field(default_factory=list)


@dataclass
class Batch:
    partitions: dict[TP, PartitionBatch] = field(default_factory=dict)
    last_offsets: dict[TP, int] = field(default_factory=dict)


def fresh_events(node: NodeState, records: RecordBatch) -> Batch:
    """Decode one batch of internal-topic records (trusted JSON events), dropping replays.

    The parser stamps every event it forwards with its source position (partition, offset,
    index); it consumes each source partition in order, and one producer keeps that order in each
    internal partition. So an event at or below the highest position a store has applied from
    that source partition is one a restarted parser sent again, whatever its event time.
    """
    batch = Batch()
    tp = records.tp
    applied = node.applied_offset(tp)
    positions = node.source_positions(tp)
    events: list[dict[str, Any]] = []
    sources: list[int] = []
    for record in records.records:
        if record.offset <= applied:
            continue
        batch.last_offsets[tp] = record.offset
        event: dict[str, Any] = orjson.loads(record.value or b"{}")
        position = event.pop(SOURCE_POSITION, None)
        if position is not None and not positions.advance(position):
            continue
        events.append(event)
        sources.append(0 if position is None else position[0])
    positions.save()
    if events:
        batch.partitions[tp] = PartitionBatch(tp, node.store(tp), events, sources)
    return batch


@dataclass
class SourceBatch:
    """The records of one source partition that the store has not applied, oldest first."""

    tp: TP
    records: list[KafkaRecord] = field(default_factory=list)
    last_offsets: dict[TP, int] = field(default_factory=dict)


def unapplied_records(node: NodeState, records: RecordBatch) -> SourceBatch:
    """Drop the records a crash made the broker deliver again: their effects are in the store."""
    batch = SourceBatch(records.tp)
    applied = node.applied_offset(records.tp)
    for record in records.records:
        if record.offset > applied:
            batch.records.append(record)
            batch.last_offsets[records.tp] = record.offset
    return batch
