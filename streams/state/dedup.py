"""Which event ids a partition has already applied, kept for a bounded span of event time.

Keys are `dedup:<hour bucket of ts>:<event_id>`, so expiry is one range delete of the buckets
older than the retention, and lookups need no scan. A replayed duplicate carries the same
`event_id` and `ts` as the original (CONTRACT.md), so it finds the same bucket.
"""

from __future__ import annotations

import struct

from streams.state.partition_store import PartitionStore

PREFIX = b"dedup:"
BUCKET_MS = 3_600_000
_BUCKET = struct.Struct(">q")


def _bucket_key(bucket: int) -> bytes:
    # Shift so that negative buckets still sort before positive ones in RocksDB's byte order.
    return PREFIX + _BUCKET.pack(bucket + 2**62)


class Deduplicator:
    def __init__(self, store: PartitionStore, retention_ms: int) -> None:
        self._store = store
        self._retention_ms = retention_ms
        self._expired_below = -(2**62)

    def first_time(self, event_id: str, ts: int) -> bool:
        """True, and remember it, unless this event id was seen before with this ts."""
        key = _bucket_key(ts // BUCKET_MS) + b":" + event_id.encode()
        if self._store.get(key) is not None:
            return False
        self._store.put(key, b"")
        return True

    def expire(self, watermark_ms: int) -> None:
        """Forget ids whose bucket ended more than the retention before `watermark_ms`."""
        below = (watermark_ms - self._retention_ms) // BUCKET_MS
        if below > self._expired_below:
            self._store.delete_range(_bucket_key(-(2**62)), _bucket_key(below))
            self._expired_below = below
