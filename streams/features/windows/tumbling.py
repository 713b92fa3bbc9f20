"""Event-time tumbling windows with grace: the per-partition `content_metrics` windows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.features.windows.dwell import DwellStats, DwellSummary
from streams.features.windows.stored import StoredState, floor_to
from streams.features.windows.watermarks import DEFAULT_IDLE_MS, SourceWatermarks

IMPRESSION = "impression"
"""The engagement type that is the denominator of a window's engagement rate."""


@dataclass(eq=True)
class WindowCounts(StoredState):
    """What one open window of one tweet has aggregated so far."""

    author_id: int
    counts: dict[str, int] = field(default_factory=dict)
    dwell: DwellStats = field(default_factory=DwellStats)

    def add(self, engagement_type: str, dwell_ms: int | None) -> None:
        self.counts[engagement_type] = self.counts.get(engagement_type, 0) + 1
        if dwell_ms is not None:
            self.dwell.add(dwell_ms)

    def to_state(self) -> dict[str, Any]:
        return {"author": self.author_id, "counts": self.counts, "dwell": self.dwell.to_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> WindowCounts:
        return cls(
            author_id=int(state["author"]),
            counts={str(k): int(n) for k, n in state["counts"].items()},
            dwell=DwellStats.from_state(state["dwell"]),
        )


def engagement_rate(counts: dict[str, int]) -> float | None:
    """Engagements other than impressions per impression; None without impressions.

    Every type other than `impression` counts as an engagement, as the contract lists them
    (including `unlike`, `report`, `dwell`): the rate says how much a seen tweet was acted on.
    """
    impressions = counts.get(IMPRESSION, 0)
    if impressions == 0:
        return None
    return (sum(counts.values()) - impressions) / impressions


@dataclass(frozen=True)
class AddResult:
    """What became of one event: counted into [window_start, window_end), or late."""

    accepted: bool
    window_start: int
    window_end: int
    watermark: int | None
    """The partition watermark after the event (None while a source partition holds it)."""

    @property
    def late(self) -> bool:
        return not self.accepted


@dataclass(frozen=True)
class ClosedWindow:
    """A final window of one tweet, [window_start, window_end) in ms, emitted exactly once."""

    tweet_id: int
    author_id: int
    window_start: int
    window_end: int
    counts: dict[str, int]
    engagement_rate: float | None
    dwell: DwellSummary

    def to_record(self) -> dict[str, Any]:
        """The `content_metrics` message value (CONTRACT.md)."""
        return {
            "tweet_id": self.tweet_id,
            # JavaScript numbers lose Snowflake ids above 2**53; the HTTP API sends strings too.
            "tweet_id_str": str(self.tweet_id),
            "author_id": self.author_id,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "final": True,
            "counts": dict(self.counts),
            "engagement_rate": self.engagement_rate,
            "dwell": dict(self.dwell),
        }


class TumblingWindows(StoredState):
    """Per-tweet tumbling windows of one partition, closed by the partition's event time.

    The watermark is the smallest, over the source partitions whose events this partition
    holds, of the largest event time each has sent, leaving out those idle for `idle_ms`
    (`SourceWatermarks`; with one source partition, the largest event time seen). A window
    [start, end) closes when `end + grace_ms <= watermark`. Because the watermark never moves back, a closed
    window stays closed: an event whose window has closed is late (`add` says so and counts it
    nowhere), so no window can be reopened or closed twice. Whether `advance` is called after
    every event or once per batch, the same windows close with the same contents.

    Open windows are indexed by start, so `advance` touches only the starts that close; there
    are about `grace_ms / size_ms + 2` distinct open starts in a steady stream.
    """

    def __init__(self, size_ms: int, grace_ms: int, idle_ms: int = DEFAULT_IDLE_MS) -> None:
        if size_ms <= 0:
            raise ValueError(f"window size must be positive, got {size_ms}")
        if grace_ms < 0:
            raise ValueError(f"grace must not be negative, got {grace_ms}")
        self._size = size_ms
        self._grace = grace_ms
        self._sources = SourceWatermarks(idle_ms)
        self._open: dict[int, dict[int, WindowCounts]] = {}

    @property
    def size_ms(self) -> int:
        return self._size

    @property
    def grace_ms(self) -> int:
        return self._grace

    @property
    def watermark(self) -> int | None:
        return self._sources.watermark

    def configured(self, idle_ms: int, source_partitions: Iterable[int]) -> TumblingWindows:
        """This state with the current idleness and source partitions (`SourceWatermarks`)."""
        self._sources = self._sources.configured(idle_ms, source_partitions)
        return self

    def window_start(self, ts: int) -> int:
        return floor_to(ts, self._size)

    def open_window_count(self) -> int:
        return sum(len(by_tweet) for by_tweet in self._open.values())

    def add(
        self,
        tweet_id: int,
        author_id: int,
        engagement_type: str,
        ts: int,
        dwell_ms: int | None = None,
        source_partition: int = 0,
        now_ms: float = 0.0,
    ) -> AddResult:
        """Count an event that `source_partition` sent, received at wall-clock `now_ms`, unless
        its window has closed (it is late)."""
        start = self.window_start(ts)
        end = start + self._size
        watermark = self._sources.watermark
        if watermark is not None and end + self._grace <= watermark:
            return AddResult(False, start, end, watermark)
        by_tweet = self._open.setdefault(start, {})
        window = by_tweet.get(tweet_id)
        if window is None:
            window = by_tweet[tweet_id] = WindowCounts(author_id)
        window.add(engagement_type, dwell_ms)
        if self._sources.observe(source_partition, ts, now_ms):
            # A batch shares one `now_ms`: the watermark moves only when a partition's latest does.
            self._sources.advance(now_ms)
        return AddResult(True, start, end, self._sources.watermark)

    def advance(self, now_ms: float | None = None) -> list[ClosedWindow]:
        """Close and forget every window the watermark has passed, in (start, tweet_id) order;
        with `now_ms`, the watermark first leaves out source partitions idle by then."""
        watermark = self._sources.watermark if now_ms is None else self._sources.advance(now_ms)
        if watermark is None:
            return []
        closed: list[ClosedWindow] = []
        for start in sorted(self._open):
            end = start + self._size
            if end + self._grace > watermark:
                break
            by_tweet = self._open.pop(start)
            for tweet_id in sorted(by_tweet):
                window = by_tweet[tweet_id]
                closed.append(
                    ClosedWindow(
                        tweet_id=tweet_id,
                        author_id=window.author_id,
                        window_start=start,
                        window_end=end,
                        counts=dict(window.counts),
                        engagement_rate=engagement_rate(window.counts),
                        dwell=window.dwell.to_dict(),
                    )
                )
        return closed

    def to_state(self) -> dict[str, Any]:
        """The whole state, including size and grace: a restored state keeps its own alignment."""
        return {
            "size": self._size,
            "grace": self._grace,
            "idle": self._sources.idle_ms,
            "sources": self._sources.to_state(),
            "open": [
                [start, tweet_id, self._open[start][tweet_id].to_state()]
                for start in sorted(self._open)
                for tweet_id in sorted(self._open[start])
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TumblingWindows:
        windows = cls(int(state["size"]), int(state["grace"]), int(state.get("idle", DEFAULT_IDLE_MS)))
        # A state from before per-source watermarks holds one watermark and no partitions.
        sources = state.get("sources", {"latest": [], "watermark": state.get("watermark")})
        windows._sources.restore(sources)
        for start, tweet_id, counts in state["open"]:
            windows._open.setdefault(int(start), {})[int(tweet_id)] = WindowCounts.from_state(counts)
        return windows
