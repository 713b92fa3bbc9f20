"""What every stateful node keeps: a RocksDB store per input partition, with its changelog.

A message at or below the store's recorded offset was applied before a crash; a message whose
event id the store has seen was re-sent by an upstream node that crashed after sending. Both are
skipped (`streams.runtime.batch`), so each event's effects land exactly once.

Bounded changelogs. Every commit is one changelog record, so a changelog grows with history. Once
a store's commits since its last snapshot outweigh that snapshot (and at least
`HOMEMIXER_SNAPSHOT_MIN_BYTES`), the store writes a new snapshot, its whole content in parts,
points its snapshot index at the first part, and has the records before it deleted. A store with
an empty disk (or one whose records were deleted from under it) loads the latest snapshot and
replays only what came after it: restore time follows the state, not the history. Without a
snapshot that covers them, missing records stop the store loudly (`ChangelogHeadMissing`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from faust.types import TP
from prometheus_client import Counter

from streams.runtime.metrics import REGISTRY
from streams.state.changelog import SnapshotPart, peek_store
from streams.state.changelog import decode as decode_record
from streams.state.changelog import encode as encode_record
from streams.state.dedup import Deduplicator
from streams.state.kafka_changelog import ChangelogHeadMissing, StoreUnrecoverable
from streams.state.keys import source_position_key
from streams.state.partition_store import Changes, PartitionStore

log = logging.getLogger(__name__)
T = TypeVar("T")


SNAPSHOTS = Counter(
    "homemixer_snapshots", "Store snapshots written to a changelog.", ["node"], registry=REGISTRY
)
SNAPSHOT_LOADS = Counter(
    "homemixer_snapshot_loads",
    "Stores restored from a snapshot, then the changelog records after it.",
    ["node"],
    registry=REGISTRY,
)

# A snapshot part's entries, before encoding: big enough that a part costs one produce call per
# few thousand keys, small enough to stay far below the producer's request size.
SNAPSHOT_PART_BYTES = 512 * 1024


class Changelog(Protocol):
    async def append(self, partition: int, record: bytes) -> int: ...

    async def bounds(self, partition: int) -> tuple[int, int]: ...

    async def append_many(self, partition: int, records: Iterable[bytes]) -> list[int]: ...

    def replay(self, partition: int, after: int) -> AsyncIterator[tuple[int, bytes]]: ...

    async def snapshot_start(self, partition: int, store: str) -> int | None: ...

    async def record_snapshot(self, partition: int, store: str, start: int) -> None: ...

    def snapshot_index_group(self, store: str) -> str: ...

    async def trim(self, partition: int, before: int) -> None: ...


@dataclass
class SnapshotMark:
    """What a store knows of its latest snapshot: where it starts, its size, and the bytes of the
    store's commit records after it (what a restore replays on top of it)."""

    start: int | None = None
    size: int = 0
    since: int = 0

    def due(self, min_bytes: int) -> bool:
        return self.since > max(min_bytes, self.size)


def _with_last(items: Iterator[T]) -> Iterator[tuple[T, bool]]:
    """Each item with whether it is the last one."""
    previous = next(items)
    for item in items:
        yield previous, False
        previous = item
    yield previous, True


class SnapshotMismatch(StoreUnrecoverable):
    """A store's snapshot index points at a record that is not the start of its snapshot."""


def snapshot_parts(entries: Iterable[tuple[bytes, bytes]]) -> Iterator[dict[bytes, bytes | None]]:
    """A store's entries in parts of about SNAPSHOT_PART_BYTES (at least one part, maybe empty)."""
    part: dict[bytes, bytes | None] = {}
    size = 0
    for key, value in entries:
        part[key] = value
        size += len(key) + len(value) + 8
        if size >= SNAPSHOT_PART_BYTES:
            yield part
            part, size = {}, 0
    if part or size == 0:
        yield part


class NodeState:
    """The partition stores of one processing node, under `<data_dir>/<node>/`.

    By default each input topic-partition has a store of its own. A `copartitioned` node reads
    several topics keyed alike (same key, same partition count, written by our own producer) and
    keeps one store per partition number for all of them, so that, say, an author's followers and
    tweets sit side by side. Such a node must be one agent, so that no batch commits another's
    half-done writes.

    With changelogs (`changelog_of`: by input topic; a copartitioned node's share one), every commit
    goes to it before it is applied locally, and a store is brought up to date from it when its
    partition is (re)assigned: state follows a partition to whichever worker owns it, whatever
    that worker's disk holds.
    """

    def __init__(
        self,
        name: str,
        data_dir: Path,
        dedup_retention_ms: int,
        copartitioned: bool = False,
        changelog_of: Callable[[str], Changelog] | None = None,
        snapshot_min_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.name = name
        self._root = data_dir / name
        self._retention_ms = dedup_retention_ms
        self._copartitioned = copartitioned
        # Input topic -> the changelog its stores write to.
        self._changelog_of = changelog_of
        self._snapshot_min_bytes = snapshot_min_bytes
        self._marks: dict[str, SnapshotMark] = {}
        self._looked_up: set[str] = set()
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
                await self._catch_up(name, tp, store)
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
            await self._catch_up(name, tp, store)

    @property
    def standby_count(self) -> int:
        return len(self._standby)

    def snapshot_index_group(self, tp: TP) -> str | None:
        """The consumer group that indexes the snapshots of `tp`'s store, or None without a
        changelog (what `homemixer reset` deletes, on a broker that cannot list groups)."""
        changelog = self._changelog(tp)
        return None if changelog is None else changelog.snapshot_index_group(self._store_name(tp))

    def _changelog(self, tp: TP) -> Changelog | None:
        return None if self._changelog_of is None else self._changelog_of(tp.topic)

    async def _catch_up(self, name: str, tp: TP, store: PartitionStore) -> None:
        changelog = self._changelog(tp)
        if changelog is None:
            return
        after = store.changelog_offset()
        mark = self._marks.setdefault(name, SnapshotMark())
        snapshot = None
        if after < 0 and name not in self._looked_up:
            # Only where there is a log to spare (a head already gone is handled below), and once
            # per store: an empty standby store is caught up every few seconds.
            first, end = await changelog.bounds(tp.partition)
            if end > first:
                self._looked_up.add(name)
                snapshot = await changelog.snapshot_start(tp.partition, name)
        try:
            replayed = await self._replay(changelog, name, tp.partition, store, after, snapshot, mark)
        except ChangelogHeadMissing:
            if snapshot is not None:
                raise
            snapshot = await changelog.snapshot_start(tp.partition, name)
            if snapshot is None or snapshot <= after:
                raise
            log.warning("%s: %s lacks deleted records; loading the snapshot at %d", self.name, name, snapshot)
            replayed = await self._replay(changelog, name, tp.partition, store, after, snapshot, mark)
        if replayed or snapshot is not None:
            loaded = "" if snapshot is None else f" after the snapshot at {snapshot}"
            log.info("%s: %s caught up from %d changelog records%s", self.name, name, replayed, loaded)

    async def _replay(
        self,
        changelog: Changelog,
        name: str,
        partition: int,
        store: PartitionStore,
        after: int,
        snapshot: int | None,
        mark: SnapshotMark,
    ) -> int:
        """Apply the store's records past `after`, or, with `snapshot`, load the snapshot that
        starts there and apply the store's records after it. Returns the commits applied."""
        loading = snapshot is not None
        seen_size = 0
        replayed = 0
        async for offset, record in changelog.replay(partition, after if snapshot is None else snapshot - 1):
            if peek_store(record) != name:
                continue  # another store sharing the partition (a source topic with more partitions)
            entry = decode_record(record)
            part = entry.snapshot
            if loading:
                if part is None or part.first != (offset == snapshot) or part.start not in (None, snapshot):
                    raise SnapshotMismatch(
                        f"{self.name}: the snapshot index of {name} points at offset {snapshot}, "
                        f"but the record at {offset} is not a part of that snapshot"
                    )
                store.load_snapshot_part(entry.changes.puts, part.first, offset if part.last else None)
                seen_size += len(record)
                if part.last:
                    loading = False
                    mark.start, mark.size, mark.since = snapshot, seen_size, 0
                    SNAPSHOT_LOADS.labels(self.name).inc()
            elif part is not None:
                # A snapshot of a state this store reaches by the commits it replays: skipped,
                # but it is now the store's latest.
                seen_size = len(record) if part.first else seen_size + len(record)
                if part.last:
                    mark.start = offset if part.start is None else part.start
                    mark.size, mark.since = seen_size, 0
            else:
                store.apply(entry.changes, offset)
                mark.since += len(record)
                replayed += 1
        if loading:
            raise SnapshotMismatch(f"{self.name}: the snapshot of {name} at {snapshot} has no last part")
        return replayed

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
            if self._changelog_of is not None:
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
        tp_of: dict[str, TP] = {}
        for tp, offset in last_offsets.items():
            name = self._store_name(tp)
            if name in self._dedups:  # only the parser checks event ids
                self._dedups[name].expire()
            offsets_by_store.setdefault(name, {})[tp.topic] = offset
            tp_of[name] = tp
        pending = {
            name: self._stores[name].take_changes(offsets) for name, offsets in offsets_by_store.items()
        }
        if self._changelog_of is None:
            for name, changes in pending.items():
                self._stores[name].apply(changes)
            return
        encoded = {name: encode_record(name, changes) for name, changes in pending.items()}
        written = await asyncio.gather(
            *(
                self._changelog_of(tp_of[name].topic).append(tp_of[name].partition, encoded[name])
                for name in pending
            )
        )
        for (name, changes), offset in zip(pending.items(), written, strict=True):
            self._stores[name].apply(changes, offset)
            mark = self._marks.setdefault(name, SnapshotMark())
            mark.since += len(encoded[name])
            if mark.due(self._snapshot_min_bytes):
                await self._snapshot(name, tp_of[name], mark)

    async def _snapshot(self, name: str, tp: TP, mark: SnapshotMark) -> None:
        """Write the store's whole content as a snapshot, index it and drop the records before it.
        Runs under the partition's lock, after a commit: the store holds exactly what its
        changelog records up to now say. A failure here loses nothing (the commit has landed; the
        previous snapshot and every record after it are still there), so it is logged, not raised."""
        store = self._stores[name]
        changelog = self._changelog(tp)
        assert changelog is not None
        try:
            parts = _with_last(snapshot_parts(store.items()))
            first_puts, only = next(parts)
            first = encode_record(name, Changes(first_puts, [], {}), SnapshotPart(None, only))
            start = await changelog.append(tp.partition, first)
            rest = [
                encode_record(name, Changes(puts, [], {}), SnapshotPart(start, last)) for puts, last in parts
            ]
            offsets = await changelog.append_many(tp.partition, rest)
            await changelog.record_snapshot(tp.partition, name, start)
            # The store is as the snapshot says: a restart from this disk replays from after it.
            store.apply(Changes({}, [], {}), offsets[-1] if offsets else start)
            mark.start, mark.size, mark.since = start, len(first) + sum(map(len, rest)), 0
            SNAPSHOTS.labels(self.name).inc()
            log.info("%s: %s snapshot of %d bytes at changelog offset %d", self.name, name, mark.size, start)
            await changelog.trim(tp.partition, start)
        except Exception:
            log.warning("%s: snapshot of %s failed; the next commit retries", self.name, name, exc_info=True)

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
