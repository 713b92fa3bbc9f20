"""Hopping windows: a key's events of the last `size_ms`, in `hop_ms` buckets (velocity)."""

from __future__ import annotations

from typing import Any

from streams.features.windows.stored import StoredState, floor_to

VELOCITY_WINDOW_MS = 300_000
VELOCITY_HOP_MS = 60_000


class HoppingCounter(StoredState):
    """Events of one key in the hopping window of `size_ms` that slides every `hop_ms`.

    Events are counted into hop-aligned buckets. `velocity(at_ts)` is the count of the hopping
    window that ends at the end of `at_ts`'s hop: events with ts in
    `[hop(at_ts) + hop_ms - size_ms, hop(at_ts) + hop_ms)`, i.e. the `size_ms / hop_ms` hops
    up to and including the one holding `at_ts`.

    Buckets expire by event time only: on `add`, buckets no window at or after the newest
    event's hop can use are dropped, and an event that would land in such a bucket is refused
    (`add` returns False). So `velocity(at_ts)` is exact for any `at_ts` at or after the newest
    event seen; for an earlier `at_ts` the older hops it needs may already be gone.
    """

    def __init__(self, size_ms: int = VELOCITY_WINDOW_MS, hop_ms: int = VELOCITY_HOP_MS) -> None:
        if hop_ms <= 0 or size_ms <= 0 or size_ms % hop_ms:
            raise ValueError(f"size ({size_ms}) must be a positive multiple of the hop ({hop_ms})")
        self._size = size_ms
        self._hop = hop_ms
        self._newest_hop: int | None = None
        self._buckets: dict[int, int] = {}

    @property
    def size_ms(self) -> int:
        return self._size

    @property
    def hop_ms(self) -> int:
        return self._hop

    def _oldest_kept(self, newest_hop: int) -> int:
        return newest_hop + self._hop - self._size

    def add(self, ts: int, n: int = 1) -> bool:
        """Count `n` events at `ts`; False (counted nowhere) when their hop has expired."""
        hop = floor_to(ts, self._hop)
        if self._newest_hop is not None and hop < self._oldest_kept(self._newest_hop):
            return False
        self._buckets[hop] = self._buckets.get(hop, 0) + n
        if self._newest_hop is None or hop > self._newest_hop:
            self._newest_hop = hop
            oldest = self._oldest_kept(hop)
            for expired in [start for start in self._buckets if start < oldest]:
                del self._buckets[expired]
        return True

    @property
    def newest_hop(self) -> int | None:
        """The start of the hop of the newest event counted."""
        return self._newest_hop

    def velocity(self, at_ts: int) -> int:
        last = floor_to(at_ts, self._hop)
        first = last + self._hop - self._size
        return sum(n for start, n in self._buckets.items() if first <= start <= last)

    def to_state(self) -> dict[str, Any]:
        return {
            "size": self._size,
            "hop": self._hop,
            "newest": self._newest_hop,
            "buckets": [[start, self._buckets[start]] for start in sorted(self._buckets)],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> HoppingCounter:
        counter = cls(int(state["size"]), int(state["hop"]))
        counter._newest_hop = state["newest"]
        counter._buckets = {int(start): int(n) for start, n in state["buckets"]}
        return counter
