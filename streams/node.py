"""What every stateful node shares: a RocksDB store per input partition, and batches of input
messages filtered down to those whose effects are not yet in the store.

A message at or below the store's recorded offset was applied before a crash; a message whose
event id the store has seen was re-sent by an upstream node that crashed after sending. Both are
skipped, so each event's effects land exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from faust.types import TP, EventT

from streams.state.dedup import Deduplicator, Seen
from streams.state.partition_store import PartitionStore

# Big enough to amortise a state commit, small enough that a batch is a few ms of work.
BATCH_MAX = 2000
BATCH_WITHIN_S = 0.05


class NodeState:
    """The partition stores of one processing node, under `<data_dir>/<node>/`.

    By default each input topic-partition has a store of its own. A `copartitioned` node reads
    several topics keyed alike (same key, same partition count, written by our own producer) and
    keeps one store per partition number for all of them, so that, say, an author's followers and
    tweets sit side by side. Such a node must be one agent, so that no batch commits another's
    half-done writes.
    """

    def __init__(
        self, name: str, data_dir: Path, dedup_retention_ms: int, copartitioned: bool = False
    ) -> None:
        self.name = name
        self._root = data_dir / name
        self._retention_ms = dedup_retention_ms
        self._copartitioned = copartitioned
        self._stores: dict[str, PartitionStore] = {}
        self._dedups: dict[str, Deduplicator] = {}

    def _store_name(self, tp: TP) -> str:
        return f"p{tp.partition}" if self._copartitioned else f"{tp.topic}-{tp.partition}"

    def store(self, tp: TP) -> PartitionStore:
        name = self._store_name(tp)
        store = self._stores.get(name)
        if store is None:
            store = self._stores[name] = PartitionStore(self._root / name)
        return store

    def dedup(self, tp: TP) -> Deduplicator:
        name = self._store_name(tp)
        dedup = self._dedups.get(name)
        if dedup is None:
            dedup = self._dedups[name] = Deduplicator(self.store(tp), self._retention_ms)
        return dedup

    def already_applied(self, tp: TP, offset: int) -> bool:
        """True for a message redelivered after a crash: its effects are already in the store."""
        return offset <= self.store(tp).applied_offset(tp.topic)

    def commit(self, last_offsets: dict[TP, int]) -> None:
        for tp in last_offsets:
            self.dedup(tp).expire()
        offsets_by_store: dict[str, dict[str, int]] = {}
        for tp, offset in last_offsets.items():
            offsets_by_store.setdefault(self._store_name(tp), {})[tp.topic] = offset
        for name, offsets in offsets_by_store.items():
            self._stores[name].commit(offsets)

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()
        self._dedups.clear()


@dataclass
class PartitionBatch:
    """The new events of one input partition in one batch, oldest first."""

    tp: TP
    store: PartitionStore
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Batch:
    partitions: dict[TP, PartitionBatch] = field(default_factory=dict)
    last_offsets: dict[TP, int] = field(default_factory=dict)


def fresh_events(node: NodeState, messages: Sequence[EventT[bytes]]) -> Batch:
    """Decode a batch of internal-topic messages (trusted JSON events), dropping replays."""
    batch = Batch()
    for message_event in messages:
        message = message_event.message
        tp, offset = message.tp, message.offset
        if node.already_applied(tp, offset):
            continue
        batch.last_offsets[tp] = offset
        event: dict[str, Any] = orjson.loads(message.value or b"{}")
        # TOO_OLD is applied: the parser already checked this event against its own horizon, and
        # only a re-send after an upstream crash (recent by construction) can be a duplicate here.
        # Qualified by topic: a copartitioned node gets one graph event by two routes, once each.
        if node.dedup(tp).check(f"{tp.topic}/{event['event_id']}", event["ts"]) is Seen.DUPLICATE:
            continue
        part = batch.partitions.get(tp)
        if part is None:
            part = batch.partitions[tp] = PartitionBatch(tp, node.store(tp))
        part.events.append(event)
    return batch
