"""One RocksDB database per (node, partition), holding the node's state and its input offsets.

Writes are buffered and land in one atomic WriteBatch together with the offset of the last
input message they reflect. After a crash the store is therefore exactly the state after some
input offset, and the node resumes right after it: nothing lost, nothing applied twice, without
Kafka transactions (which the embedded broker lacks; FIELD_NOTES).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from rocksdict import Options, Rdict, WriteBatch

from streams.state.keys import CHANGELOG_OFFSET, applied_offset_key

_DELETED = None
# Past every key a store holds (all start with a byte below 0xff): a snapshot's first part clears
# [b"", this) before it loads.
_END_OF_KEYS = b"\xff" * 16


@dataclass
class Changes:
    """One commit's worth of writes: what a changelog record carries."""

    puts: dict[bytes, bytes | None]
    """Key -> new value, or None for a delete."""
    ranges: list[tuple[bytes, bytes]]
    """[start, end) ranges deleted before the puts apply."""
    offsets: dict[str, int]
    """Input topic -> offset of the last message these changes reflect."""


def _options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    return options


class PartitionStore:
    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = Rdict(str(path), _options())
        self._dirty: dict[bytes, bytes | None] = {}
        self._ranges_to_delete: list[tuple[bytes, bytes]] = []
        self._offsets: dict[str, int] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self._dirty:
            return self._dirty[key]
        value: bytes | None = self._db.get(key)
        return value

    def put(self, key: bytes, value: bytes) -> None:
        self._dirty[key] = value

    def delete(self, key: bytes) -> None:
        self._dirty[key] = _DELETED

    def delete_range(self, start: bytes, end: bytes) -> None:
        """Delete keys in [start, end) at the next commit, before the buffered writes apply."""
        self._ranges_to_delete.append((start, end))
        for key in [k for k in self._dirty if start <= k < end]:
            del self._dirty[key]

    def scan_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Committed and buffered entries whose key starts with `prefix`, in key order."""
        pending = {k: v for k, v in self._dirty.items() if k.startswith(prefix)}
        merged: dict[bytes, bytes | None] = {}
        for key, value in cast(Iterator[tuple[bytes, bytes]], self._db.items(from_key=prefix)):
            if not key.startswith(prefix):
                break
            if not any(start <= key < stop for start, stop in self._ranges_to_delete):
                merged[key] = value
        merged.update(pending)
        for key in sorted(merged):
            current = merged[key]
            if current is not None:
                yield key, current

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every committed entry but the store's own changelog position: what a snapshot holds."""
        for key, value in cast(Iterator[tuple[bytes, bytes]], self._db.items()):
            if key != CHANGELOG_OFFSET:
                yield key, value

    def load_snapshot_part(self, puts: dict[bytes, bytes | None], first: bool, last_at: int | None) -> None:
        """Write one part of a snapshot. The first part empties the store (whatever a stale disk
        held), the last one (`last_at`: its changelog offset) records the store's changelog
        position: a load interrupted between them leaves a store that looks empty, and loads again."""
        batch = WriteBatch(raw_mode=True)
        if first:
            batch.delete_range(b"", _END_OF_KEYS)
            self._offsets.clear()
        for key, value in puts.items():
            if value is not _DELETED:
                batch.put(key, value)
        if last_at is not None:
            batch.put(CHANGELOG_OFFSET, str(last_at).encode())
        self._db.write(batch)

    def applied_offset(self, topic: str) -> int:
        """Offset of the last message of `topic` reflected in this store, or -1 for none."""
        offset = self._offsets.get(topic)
        if offset is None:
            raw = self._db.get(applied_offset_key(topic))
            offset = self._offsets[topic] = -1 if raw is None else int(raw)
        return offset

    def changelog_offset(self) -> int:
        """Offset of the last changelog record reflected in this store, or -1 for none."""
        raw = self._db.get(CHANGELOG_OFFSET)
        return -1 if raw is None else int(raw)

    def take_changes(self, offsets: dict[str, int]) -> Changes:
        """The buffered writes, with the input offsets they reflect; the buffer starts empty again."""
        changes = Changes(dict(self._dirty), list(self._ranges_to_delete), dict(offsets))
        self._dirty.clear()
        self._ranges_to_delete.clear()
        return changes

    def apply(self, changes: Changes, changelog_offset: int | None = None) -> None:
        """Write changes and the offsets they reflect in one atomic batch."""
        batch = WriteBatch(raw_mode=True)
        for start, end in changes.ranges:
            batch.delete_range(start, end)
        for key, value in changes.puts.items():
            if value is _DELETED:
                batch.delete(key)
            else:
                batch.put(key, value)
        for topic, offset in changes.offsets.items():
            batch.put(applied_offset_key(topic), str(offset).encode())
        if changelog_offset is not None:
            batch.put(CHANGELOG_OFFSET, str(changelog_offset).encode())
        self._db.write(batch)
        self._offsets.update(changes.offsets)

    def commit(self, offsets: dict[str, int]) -> None:
        """Write every buffered change and the input offsets they reflect, atomically."""
        self.apply(self.take_changes(offsets))

    def close(self) -> None:
        self._db.close()
