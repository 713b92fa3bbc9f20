"""Which event ids a partition has already applied, kept for a bounded span of event time.

Keys are `dedup:<hour bucket of ts>:<event_id>`, so expiry is one range delete of the buckets
older than the retention, and lookups need no scan. A replayed duplicate carries the same
`event_id` and `ts` as the original (CONTRACT.md), so it finds the same bucket.

An event older than the retention (measured from the partition's event-time high-water mark)
cannot be checked, because the ids of its time are forgotten: `check` says `TOO_OLD` and the
caller decides (the parser dead-letters it, so that no duplicate can slip through).
"""

from __future__ import annotations

import enum
import struct

from streams.state.partition_store import PartitionStore

PREFIX = b"dedup:"
WATERMARK_KEY = b"\x00dedup-watermark"
BUCKET_MS = 3_600_000
_BUCKET = struct.Struct(">q")
_LOWEST = -(2**62)


class Seen(enum.Enum):
    FIRST = "first"
    DUPLICATE = "duplicate"
    TOO_OLD = "too_old"


def _bucket_key(bucket: int) -> bytes:
    # Shift so that negative buckets still sort before positive ones in RocksDB's byte order.
    return PREFIX + _BUCKET.pack(bucket + 2**62)


class Deduplicator:
    def __init__(self, store: PartitionStore, retention_ms: int) -> None:
        self._store = store
        self._retention_ms = retention_ms
        stored = store.get(WATERMARK_KEY)
        self._watermark = _LOWEST if stored is None else int(stored)
        self._expired_below = _LOWEST

    @property
    def horizon_ms(self) -> int:
        """Events older than this cannot be checked for duplicates."""
        return self._watermark - self._retention_ms

    def check(self, event_id: str, ts: int) -> Seen:
        """Whether this (event id, ts) is new, and remember it when it is."""
        if ts < self.horizon_ms:
            return Seen.TOO_OLD
        key = _bucket_key(ts // BUCKET_MS) + b":" + event_id.encode()
        if self._store.get(key) is not None:
            return Seen.DUPLICATE
        self._store.put(key, b"")
        self._watermark = max(self._watermark, ts)
        return Seen.FIRST

    def expire(self) -> None:
        """Forget ids whose hour ended before the horizon; stage the watermark for the commit."""
        below = self.horizon_ms // BUCKET_MS
        if below > self._expired_below:
            self._store.delete_range(_bucket_key(_LOWEST), _bucket_key(below))
            self._expired_below = below
        self._store.put(WATERMARK_KEY, str(self._watermark).encode())
