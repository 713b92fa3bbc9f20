"""Event time of a node's input partition when its events come from several source partitions.

An internal partition (say `engagements-by-tweet` partition 2) mixes events that the parser read
from every partition of `engagement_events`, in whatever order it read them. Its own largest
`ts` is therefore no measure of progress: one source partition read early would close windows
that another's earlier events still belong to. As Flink takes the smallest watermark of its
inputs and Kafka Streams waits for every input, the watermark here is the smallest, over the
source partitions, of the largest `ts` each has sent (CONTRACT.md, "Windows"), leaving out a
partition that has sent nothing for `idle_ms` of wall-clock time (else one silent partition
would hold every window open). It never moves back: when an idle partition speaks again with
older events, those are late.

Wall-clock idleness is not kept across restarts: a restored node counts every known partition
as heard from when it first advances, so for `idle_ms` after a restart each of them counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# For a state stored without one; nodes pass HOMEMIXER_IDLE_S.
DEFAULT_IDLE_MS = 10_000


class SourceWatermarks:
    """`expected`: the source partitions known to exist (the source topics' partitions). One
    that has sent nothing yet holds the watermark back until it has been quiet for `idle_ms`,
    so a node that starts reading one partition first does not close windows the others feed."""

    def __init__(self, idle_ms: int, expected: Iterable[int] = ()) -> None:
        self._idle_ms = idle_ms
        self._expected = frozenset(expected)
        self._latest: dict[int, int] = {}
        self._heard_ms: dict[int, float] = {}
        self._watermark: int | None = None

    @property
    def idle_ms(self) -> int:
        return self._idle_ms

    @property
    def watermark(self) -> int | None:
        return self._watermark

    @property
    def latest(self) -> dict[int, int]:
        """The largest `ts` seen from each source partition."""
        return dict(self._latest)

    def observe(self, source_partition: int, ts: int, now_ms: float) -> bool:
        """An event from `source_partition`, received at wall-clock `now_ms`; True when it
        raised that partition's latest `ts` (else only idleness can move the watermark)."""
        self._heard_ms[source_partition] = now_ms
        if ts > self._latest.get(source_partition, ts - 1):
            self._latest[source_partition] = ts
            return True
        return False

    def advance(self, now_ms: float) -> int | None:
        """The watermark as of `now_ms`: the smallest latest `ts` of the partitions heard from
        within `idle_ms`, or, when all are idle, the largest (nothing is arriving)."""
        active = []
        for partition in self._expected | self._latest.keys():
            # One not heard from (since a start or restore) counts from the first advance.
            if now_ms - self._heard_ms.setdefault(partition, now_ms) >= self._idle_ms:
                continue
            if partition not in self._latest:
                return self._watermark  # an active partition that has sent nothing holds it
            active.append(self._latest[partition])
        candidate = min(active) if active else max(self._latest.values(), default=None)
        if candidate is not None and (self._watermark is None or candidate > self._watermark):
            self._watermark = candidate
        return self._watermark

    def configured(self, idle_ms: int, expected: Iterable[int]) -> SourceWatermarks:
        """This state under the current settings (they may change between runs)."""
        moved = SourceWatermarks(idle_ms, expected)
        moved.restore(self.to_state())
        return moved

    def to_state(self) -> dict[str, Any]:
        return {"latest": sorted(self._latest.items()), "watermark": self._watermark}

    def restore(self, state: dict[str, Any]) -> None:
        self._latest = {int(p): int(ts) for p, ts in state["latest"]}
        self._heard_ms = {}
        self._watermark = state["watermark"]
