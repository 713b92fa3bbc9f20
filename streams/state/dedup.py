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

from streams.state.keys import DEDUP_WATERMARK, dedup_bucket_key, dedup_key
from streams.state.partition_store import PartitionStore

BUCKET_MS = 3_600_000
_LOWEST = -(2**62)


class Seen(enum.Enum):
    FIRST = "first"
    DUPLICATE = "duplicate"
    TOO_OLD = "too_old"


class Deduplicator:
    def __init__(self, store: PartitionStore, retention_ms: int) -> None:
        self._store = store
        self._retention_ms = retention_ms
        stored = store.get(DEDUP_WATERMARK)
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
        key = dedup_key(ts // BUCKET_MS, event_id)
        if self._store.get(key) is not None:
            return Seen.DUPLICATE
        self._store.put(key, b"")
        self._watermark = max(self._watermark, ts)
        return Seen.FIRST

    def expire(self) -> None:
        """Forget ids whose hour ended before the horizon; stage the watermark for the commit."""
        below = self.horizon_ms // BUCKET_MS
        if below > self._expired_below:
            self._store.delete_range(dedup_bucket_key(_LOWEST), dedup_bucket_key(below))
            self._expired_below = below
        self._store.put(DEDUP_WATERMARK, str(self._watermark).encode())
