"""Changelog records: each commit of a partition store, as one Kafka message.

A node's stores write every commit to the node's changelog topic (partition = the store's
partition) before applying it locally, so a worker that takes over a partition with an empty or
stale disk replays the records it lacks and continues exactly where the last owner committed.
One record per commit keeps a commit atomic in the changelog as it is in RocksDB.

Layout: u32 header length, header JSON (`store`, `offsets`, `ranges` as hex pairs), then entries
`u32 key length, key, i32 value length (-1: deleted), value`.
"""

from __future__ import annotations

import struct

import orjson

from streams.state.partition_store import Changes

_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
DELETED = -1


def encode(store: str, changes: Changes) -> bytes:
    header = orjson.dumps(
        {
            "store": store,
            "offsets": changes.offsets,
            "ranges": [[start.hex(), end.hex()] for start, end in changes.ranges],
        }
    )
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


def decode(record: bytes) -> tuple[str, Changes]:
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
    return header["store"], Changes(puts, ranges, {k: int(v) for k, v in header["offsets"].items()})
