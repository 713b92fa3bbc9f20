"""Changelog records: each commit of a partition store, and each part of a store's snapshot, as one
Kafka message.

A node's stores write every commit to the changelog topic of their input (partition = the store's
partition) before applying it locally, so a worker that takes over a partition with an empty or
stale disk replays the records it lacks and continues exactly where the last owner committed.
One record per commit keeps a commit atomic in the changelog as it is in RocksDB.

Now and then a store also writes a snapshot: its whole content, in parts, after which the records
before the snapshot's first part are no longer needed (`streams.state.node_state`). A snapshot's
first part has no `start`; every later part carries the offset of the first, and the final one
says `last`.

Layout: u32 header length, header JSON (`store`, `offsets`, `ranges` as hex pairs, and for a
snapshot part `snapshot`: `{"start", "last"}`), then entries `u32 key length, key, i32 value
length (-1: deleted), value`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import orjson

from streams.state.partition_store import Changes

_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
DELETED = -1


@dataclass(frozen=True, slots=True)
class SnapshotPart:
    start: int | None
    """Changelog offset of the snapshot's first part; None in the first part itself."""
    last: bool

    @property
    def first(self) -> bool:
        return self.start is None


@dataclass(frozen=True, slots=True)
class ChangelogRecord:
    store: str
    changes: Changes
    snapshot: SnapshotPart | None = None
    """Set for a part of a snapshot, None for a commit."""


def encode(store: str, changes: Changes, snapshot: SnapshotPart | None = None) -> bytes:
    fields: dict[str, Any] = {
        "store": store,
        "offsets": changes.offsets,
        "ranges": [[start.hex(), end.hex()] for start, end in changes.ranges],
    }
    if snapshot is not None:
        fields["snapshot"] = {"start": snapshot.start, "last": snapshot.last}
    header = orjson.dumps(fields)
    parts = [_U32.pack(len(header)), header]
    for key, value in changes.puts.items():
        parts.append(_U32.pack(len(key)))
        parts.append(key)
        if value is None:
            parts.append(_I32.pack(DELETED))
        else:
            parts.append(_I32.pack(len(value)))
            parts.append(value)
    return b"".join(parts)


def decode(record: bytes) -> ChangelogRecord:
    (header_len,) = _U32.unpack_from(record, 0)
    pos = _U32.size
    header = orjson.loads(record[pos : pos + header_len])
    pos += header_len
    puts: dict[bytes, bytes | None] = {}
    while pos < len(record):
        (key_len,) = _U32.unpack_from(record, pos)
        pos += _U32.size
        key = record[pos : pos + key_len]
        pos += key_len
        (value_len,) = _I32.unpack_from(record, pos)
        pos += _I32.size
        if value_len == DELETED:
            puts[key] = None
        else:
            puts[key] = record[pos : pos + value_len]
            pos += value_len
    ranges = [(bytes.fromhex(a), bytes.fromhex(b)) for a, b in header["ranges"]]
    changes = Changes(puts, ranges, {k: int(v) for k, v in header["offsets"].items()})
    snapshot = header.get("snapshot")
    part = None if snapshot is None else SnapshotPart(snapshot["start"], snapshot["last"])
    return ChangelogRecord(header["store"], changes, part)


def peek_store(record: bytes) -> str:
    """The store a record belongs to, without decoding its entries: a replay skips other stores'."""
    (header_len,) = _U32.unpack_from(record, 0)
    store: str = orjson.loads(record[_U32.size : _U32.size + header_len])["store"]
    return store
