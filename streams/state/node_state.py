"""What every stateful node keeps: a RocksDB store per input partition, with its changelog.

A message at or below the store's recorded offset was applied before a crash; a message whose
event id the store has seen was re-sent by an upstream node that crashed after sending. Both are
skipped (`streams.runtime.batch`), so each event's effects land exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from faust.types import TP

from streams.state import changelog
from streams.state.dedup import Deduplicator
from streams.state.keys import source_position_key
from streams.state.partition_store import PartitionStore

log = logging.getLogger(__name__)
T = TypeVar("T")


class Changelog(Protocol):
    async def append(self, partition: int, record: bytes) -> int: ...

    def replay(self, partition: int, after: int) -> AsyncIterator[tuple[int, bytes]]: ...


class NodeState:
    """The partition stores of one processing node, under `<data_dir>/<node>/`.

    By default each input topic-partition has a store of its own. A `copartitioned` node reads
    several topics keyed alike (same key, same partition count, written by our own producer) and
    keeps one store per partition number for all of them, so that, say, an author's followers and
    tweets sit side by side. Such a node must be one agent, so that no batch commits another's
    half-done writes.

    With a changelog, every commit goes to it before it is applied locally, and a store is
    brought up to date from it when its partition is (re)assigned: state follows a partition to
    whichever worker owns it, whatever that worker's disk holds.
    """

    def __init__(
        self,
        name: str,
        data_dir: Path,
        dedup_retention_ms: int,
        copartitioned: bool = False,
        changelog: Changelog | None = None,
    ) -> None:
        self.name = name
        self._root = data_dir / name
        self._retention_ms = dedup_retention_ms
        self._copartitioned = copartitioned
        self._changelog = changelog
        self._stores: dict[str, PartitionStore] = {}
        self._dedups: dict[str, Deduplicator] = {}
        self._caches: dict[str, Any] = {}
        self._stale: set[str] = set()
        self._standby: dict[str, PartitionStore] = {}
        # Stores being opened (catching up): a standby pass must not open the same path again.
        self._opening: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    def _store_name(self, tp: TP) -> str:
        return f"p{tp.partition}" if self._copartitioned else f"{tp.topic}-{tp.partition}"

    def lock(self, tp: TP) -> asyncio.Lock:
        """Held by whatever changes a partition's store, from its open to its commit: a batch, or
        a tick between batches (`streams.runtime.batch.run_tick`)."""
        return self._locks.setdefault(self._store_name(tp), asyncio.Lock())

    async def open(self, tps: Iterable[TP]) -> None:
        """Open the stores of these partitions, replaying the changelog records each one lacks."""
        for tp in tps:
            name = self._store_name(tp)
            if name in self._stale:
                self._close(name)
            if name in self._stores:
                continue
            self._opening.add(name)
            try:
                store = self._standby.pop(name, None) or PartitionStore(self._root / name)
                await self._catch_up(name, tp.partition, store)
                self._stores[name] = store
            finally:
                self._opening.discard(name)

    async def warm(self, tps: Iterable[TP]) -> None:
        """Keep standby copies of partitions this worker does not own current with the changelog,
        so that taking one over replays only the last few records."""
        for tp in tps:
            name = self._store_name(tp)
            if name in self._stale:
                # Owned here until a rebalance: from now on a standby, reopened so that nothing a
                # batch left unfinished in the store carries over.
                async with self.lock(tp):
                    if name in self._stale:
                        self._close(name)
            if name in self._stores or name in self._opening:
                continue  # owned here (the agent keeps it current), or being opened
            store = self._standby.get(name)
            if store is None:
                store = self._standby[name] = PartitionStore(self._root / name)
            await self._catch_up(name, tp.partition, store)

    @property
    def standby_count(self) -> int:
        return len(self._standby)

    async def _catch_up(self, name: str, partition: int, store: PartitionStore) -> None:
        if self._changelog is None:
            return
        replayed = 0
        async for offset, record in self._changelog.replay(partition, store.changelog_offset()):
            store_name, changes = changelog.decode(record)
            if store_name == name:
                store.apply(changes, offset)
                replayed += 1
        if replayed:
            log.info("%s: %s caught up from %d changelog records", self.name, name, replayed)

    def forget(self, tps: Iterable[TP]) -> None:
        """Mark the stores of revoked partitions stale: another worker may change them before we
        get them back, so `open` reopens them and catches up from the changelog. (A stale store
        is closed under its partition's lock, by `open` or `warm`, never under a batch still
        using it.)"""
        self._stale.update(self._store_name(tp) for tp in tps)

    def _close(self, name: str) -> None:
        self._stale.discard(name)
        store = self._stores.pop(name, None)
        if store is not None:
            store.close()
        self._dedups.pop(name, None)
        self._caches.pop(name, None)

    def opened(self, tp: TP) -> PartitionStore | None:
        """The partition's store if this worker has it open and current, else None."""
        name = self._store_name(tp)
        return None if name in self._stale else self._stores.get(name)

    def store(self, tp: TP) -> PartitionStore:
        name = self._store_name(tp)
        store = self._stores.get(name)
        if store is None:
            if self._changelog is not None:
                raise RuntimeError(f"{self.name}: store {name} used before open()")
            store = self._stores[name] = PartitionStore(self._root / name)
        return store

    def cached(self, tp: TP, load: Callable[[PartitionStore], T]) -> T:
        """A decoded object derived from a partition's store, dropped with the store on revoke."""
        name = self._store_name(tp)
        if name not in self._caches:
            self._caches[name] = load(self.store(tp))
        return cast(T, self._caches[name])

    def dedup(self, tp: TP) -> Deduplicator:
        name = self._store_name(tp)
        dedup = self._dedups.get(name)
        if dedup is None:
            dedup = self._dedups[name] = Deduplicator(self.store(tp), self._retention_ms)
        return dedup

    def source_positions(self, tp: TP) -> SourcePositions:
        return SourcePositions(self.store(tp), tp.topic)

    def applied_offset(self, tp: TP) -> int:
        """The last offset of `tp` whose effects are in the store (-1: none)."""
        return self.store(tp).applied_offset(tp.topic)

    async def commit(self, last_offsets: dict[TP, int]) -> None:
        """Commit each touched store: to the changelog first, then locally, atomically."""
        offsets_by_store: dict[str, dict[str, int]] = {}
        partition_of: dict[str, int] = {}
        for tp, offset in last_offsets.items():
            name = self._store_name(tp)
            if name in self._dedups:  # only the parser checks event ids
                self._dedups[name].expire()
            offsets_by_store.setdefault(name, {})[tp.topic] = offset
            partition_of[name] = tp.partition
        pending = {
            name: self._stores[name].take_changes(offsets) for name, offsets in offsets_by_store.items()
        }
        if self._changelog is None:
            for name, changes in pending.items():
                self._stores[name].apply(changes)
            return
        written = await asyncio.gather(
            *(
                self._changelog.append(partition_of[name], changelog.encode(name, changes))
                for name, changes in pending.items()
            )
        )
        for (name, changes), offset in zip(pending.items(), written, strict=True):
            self._stores[name].apply(changes, offset)

    def close(self) -> None:
        for name in list(self._stores):
            self._close(name)

    def has_applied(self, tp: TP, offset: int) -> bool:
        """Whether this worker has the partition's store open and it has applied `offset`: how a
        node that follows another waits for it."""
        return self.opened(tp) is not None and offset <= self.applied_offset(tp)


_NODE_STATES: dict[str, NodeState] = {}


def register(state: NodeState) -> NodeState:
    """Make a node's state findable by name, for nodes and views that read another node's state."""
    if state.name in _NODE_STATES:
        raise ValueError(f"node state {state.name!r} is registered twice")
    _NODE_STATES[state.name] = state
    return state


def node_state_named(name: str) -> NodeState:
    try:
        return _NODE_STATES[name]
    except KeyError:
        raise LookupError(f"no node state {name!r}: is its node in the topology?") from None


class SourcePositions:
    """The highest source position (offset, index) applied from each source partition, for one
    input partition's batch: each is read from the store once, and `save` writes back the ones
    the batch moved (they commit with the batch)."""

    def __init__(self, store: PartitionStore, topic: str) -> None:
        self._store = store
        self._topic = topic
        self._seen: dict[int, tuple[int, int] | None] = {}
        self._moved: dict[int, tuple[int, int]] = {}

    def advance(self, position: list[int]) -> bool:
        """Record an event's source position; False when the store already applied it."""
        partition, offset, index = position
        if partition in self._seen:
            seen = self._seen[partition]
        else:
            stored = self._store.get(source_position_key(self._topic, partition))
            seen = None if stored is None else _position(stored)
        if seen is not None and (offset, index) <= seen:
            self._seen[partition] = seen
            return False
        self._seen[partition] = self._moved[partition] = (offset, index)
        return True

    def save(self) -> None:
        for partition, (offset, index) in self._moved.items():
            self._store.put(source_position_key(self._topic, partition), f"{offset}:{index}".encode())


def _position(stored: bytes) -> tuple[int, int]:
    offset, index = stored.split(b":")
    return int(offset), int(index)
