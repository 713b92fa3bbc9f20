"""One RocksDB database per (node, partition), holding the node's state and its input offsets.

Writes are buffered and land in one atomic WriteBatch together with the offset of the last
input message they reflect. After a crash the store is therefore exactly the state after some
input offset, and the node resumes right after it: nothing lost, nothing applied twice, without
Kafka transactions (which the embedded broker lacks; FIELD_NOTES).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

from rocksdict import Options, Rdict, WriteBatch

OFFSET_PREFIX = b"\x00offset:"
_DELETED = None


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

    def applied_offset(self, topic: str) -> int:
        """Offset of the last message of `topic` reflected in this store, or -1 for none."""
        offset = self._offsets.get(topic)
        if offset is None:
            raw = self._db.get(OFFSET_PREFIX + topic.encode())
            offset = self._offsets[topic] = -1 if raw is None else int(raw)
        return offset

    def commit(self, offsets: dict[str, int]) -> None:
        """Write every buffered change and the input offsets they reflect, atomically."""
        batch = WriteBatch(raw_mode=True)
        for start, end in self._ranges_to_delete:
            batch.delete_range(start, end)
        for key, value in self._dirty.items():
            if value is _DELETED:
                batch.delete(key)
            else:
                batch.put(key, value)
        for topic, offset in offsets.items():
            batch.put(OFFSET_PREFIX + topic.encode(), str(offset).encode())
        self._db.write(batch)
        self._offsets.update(offsets)
        self._dirty.clear()
        self._ranges_to_delete.clear()

    def close(self) -> None:
        self._db.close()
