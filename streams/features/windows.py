"""Event-time windows and the aggregations kept inside them: pure state, no I/O, no clock.

Faust's own windowed tables expire by wall clock even for event-time windows, cannot tell the
close handler what a window aggregated, and have no session windows (FIELD_NOTES.md). So the
windows live here as plain state that an agent drives with event times only, and that it keeps in
RocksDB between batches through `encode`/`decode` (an exact round trip: `decode(b).encode() == b`
and `decode(x.encode()) == x`).

- `TumblingWindows`: the per-partition `content_metrics` windows (CONTRACT.md, "Windows in
  content_metrics"): aligned to epoch multiples of the size, closed once the partition's
  watermark (the largest event time seen) reaches the window end plus the grace, each closed
  window returned exactly once; an event for a window that has closed is reported late and
  counted nowhere.
- `HoppingCounter`: per-key engagement velocity, the events of the last `size_ms` in `hop_ms`
  buckets; buckets expire by event time on `add`, never by wall clock.
- `Sessions`: per-user session windows split by an inactivity gap.
- `DwellStats`: count, sum, average, min, max exactly, and p50/p90/p99 from a mergeable DDSketch.

The encoded form is JSON (orjson, sorted keys) rather than pickle: it is stable across Python and
library versions, readable when debugging a RocksDB dump, and needs no trust in what is decoded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Self, TypedDict, cast

import orjson
from ddsketch import DDSketch
from ddsketch.store import DenseStore

FORMAT_VERSION = 1
"""Written into every encoded state; a state of another version is refused, not misread."""

SKETCH_RELATIVE_ACCURACY = 0.01
"""A dwell percentile is within 1% of the exact value (DDSketch's relative-error guarantee)."""

P50, P90, P99 = 0.50, 0.90, 0.99
"""The dwell percentiles a window reports."""

IMPRESSION = "impression"
"""The engagement type that is the denominator of a window's engagement rate."""

VELOCITY_WINDOW_MS = 300_000
VELOCITY_HOP_MS = 60_000
SESSION_GAP_MS = 1_800_000

_JSON_OPTIONS = orjson.OPT_SORT_KEYS


def _dumps(state: dict[str, Any]) -> bytes:
    return orjson.dumps({"v": FORMAT_VERSION, **state}, option=_JSON_OPTIONS)


def _loads(data: bytes, kind: str) -> dict[str, Any]:
    state = orjson.loads(data)
    if not isinstance(state, dict) or state.get("v") != FORMAT_VERSION:
        raise ValueError(f"not a version-{FORMAT_VERSION} {kind} state")
    return state


class StoredState:
    """A window state kept in RocksDB: `to_state` / `from_state` define it as JSON-able values;
    this gives the bytes (`encode` / `decode`) and equality of states (states are mutable:
    not hashable)."""

    def to_state(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        raise NotImplementedError

    def encode(self) -> bytes:
        return _dumps(self.to_state())

    @classmethod
    def decode(cls, data: bytes) -> Self:
        return cls.from_state(_loads(data, cls.__name__))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, type(self)):
            return NotImplemented
        return self.to_state() == other.to_state()

    __hash__ = None  # type: ignore[assignment]


def _floor_to(ts: int, step: int) -> int:
    """The multiple of `step` at or below `ts`: epoch-aligned, also for negative times."""
    return ts - ts % step


# --------------------------------------------------------------------------------------------
# Aggregations


class DwellSummary(TypedDict):
    count: int
    sum: int
    avg: float | None
    min: int | None
    max: int | None
    p50: float | None
    p90: float | None
    p99: float | None


def _store_bins(store: DenseStore) -> list[list[int]]:
    """The non-empty bins of a DDSketch store as sorted [key, count] pairs.

    Only the bins' contents matter for quantiles; the store's offset and spare capacity depend on
    the order values arrived in, so they are left out and the encoding is canonical.
    """
    return [[index + store.offset, int(n)] for index, n in enumerate(store.bins) if n]


def _fill_store(store: DenseStore, bins: Iterable[list[int]]) -> None:
    for key, n in bins:
        store.add(int(key), float(n))


class DwellStats(StoredState):
    """Dwell-time aggregations of one window: exact count/sum/min/max, approximate percentiles.

    Dwell is integer milliseconds (CONTRACT.md), so the sum is an exact int: merging in any
    order gives the same state, which float sums would not. Percentiles come from a DDSketch
    (relative accuracy `SKETCH_RELATIVE_ACCURACY`), which merges without losing accuracy, so
    per-partition or per-window stats can be combined. A quantile is the value of rank
    `floor(q * (count - 1))` in the sorted values, within the relative accuracy, clamped to the
    exact [min, max]; quantiles 0 and 1 are the exact min and max.

    The protobuf that ddsketch can serialise to is not a dependency here, so the sketch is
    serialised as its non-empty bins (positive, negative, zero count).
    """

    __slots__ = ("_count", "_sum", "_min", "_max", "_sketch")

    def __init__(self) -> None:
        self._count = 0
        self._sum = 0
        self._min: int | None = None
        self._max: int | None = None
        self._sketch = DDSketch(SKETCH_RELATIVE_ACCURACY)

    @property
    def count(self) -> int:
        return self._count

    @property
    def sum(self) -> int:
        return self._sum

    @property
    def min(self) -> int | None:
        return self._min

    @property
    def max(self) -> int | None:
        return self._max

    @property
    def avg(self) -> float | None:
        return self._sum / self._count if self._count else None

    def add(self, value: int) -> None:
        self._count += 1
        self._sum += value
        self._min = value if self._min is None else min(self._min, value)
        self._max = value if self._max is None else max(self._max, value)
        self._sketch.add(value)

    def merge(self, other: DwellStats) -> None:
        """Fold `other` into this one, as if its values had been added here."""
        if other._count == 0:
            return
        self._count += other._count
        self._sum += other._sum
        self._min = other._min if self._min is None else min(self._min, cast(int, other._min))
        self._max = other._max if self._max is None else max(self._max, cast(int, other._max))
        self._sketch.merge(other._sketch)

    def quantile(self, q: float) -> float | None:
        """The approximate value at quantile `q` (0..1); None when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        if self._min is None or self._max is None:
            return None
        # The extremes are known exactly; the sketch would answer with their bins' values.
        if q == 0.0:
            return float(self._min)
        if q == 1.0:
            return float(self._max)
        value = self._sketch.get_quantile_value(q)
        if value is None:
            return None
        # The sketch answers with a bin's representative value; the true quantile lies within
        # [min, max], so clamping can only bring the answer closer.
        return float(min(max(value, self._min), self._max))

    def to_dict(self) -> DwellSummary:
        return {
            "count": self._count,
            "sum": self._sum,
            "avg": self.avg,
            "min": self._min,
            "max": self._max,
            "p50": self.quantile(P50),
            "p90": self.quantile(P90),
            "p99": self.quantile(P99),
        }

    def to_state(self) -> dict[str, Any]:
        sketch = self._sketch
        return {
            "n": self._count,
            "sum": self._sum,
            "min": self._min,
            "max": self._max,
            "pos": _store_bins(cast(DenseStore, sketch._store)),
            "neg": _store_bins(cast(DenseStore, sketch._negative_store)),
            "zero": int(sketch._zero_count),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DwellStats:
        stats = cls()
        stats._count = int(state["n"])
        stats._sum = int(state["sum"])
        stats._min = state["min"]
        stats._max = state["max"]
        sketch = stats._sketch
        _fill_store(cast(DenseStore, sketch._store), state["pos"])
        _fill_store(cast(DenseStore, sketch._negative_store), state["neg"])
        sketch._zero_count = float(state["zero"])
        # The sketch's own summary fields drive get_quantile_value and merge.
        sketch._count = float(stats._count)
        sketch._sum = float(stats._sum)
        sketch._min = float("+inf") if stats._min is None else float(stats._min)
        sketch._max = float("-inf") if stats._max is None else float(stats._max)
        return stats

    def __repr__(self) -> str:
        return f"DwellStats({self.to_dict()})"


# --------------------------------------------------------------------------------------------
# Tumbling windows with grace (content_metrics)


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
    watermark: int
    """The partition watermark after the event."""

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

    The watermark is the largest event time the partition has seen. A window [start, end)
    closes when `end + grace_ms <= watermark`. Because the watermark never moves back, a closed
    window stays closed: an event whose window has closed is late (`add` says so and counts it
    nowhere), so no window can be reopened or closed twice. Whether `advance` is called after
    every event or once per batch, the same windows close with the same contents.

    Open windows are indexed by start, so `advance` touches only the starts that close; there
    are about `grace_ms / size_ms + 2` distinct open starts in a steady stream.
    """

    def __init__(self, size_ms: int, grace_ms: int) -> None:
        if size_ms <= 0:
            raise ValueError(f"window size must be positive, got {size_ms}")
        if grace_ms < 0:
            raise ValueError(f"grace must not be negative, got {grace_ms}")
        self._size = size_ms
        self._grace = grace_ms
        self._watermark: int | None = None
        self._open: dict[int, dict[int, WindowCounts]] = {}

    @property
    def size_ms(self) -> int:
        return self._size

    @property
    def grace_ms(self) -> int:
        return self._grace

    @property
    def watermark(self) -> int | None:
        return self._watermark

    def window_start(self, ts: int) -> int:
        return _floor_to(ts, self._size)

    def open_window_count(self) -> int:
        return sum(len(by_tweet) for by_tweet in self._open.values())

    def add(
        self, tweet_id: int, author_id: int, engagement_type: str, ts: int, dwell_ms: int | None = None
    ) -> AddResult:
        start = self.window_start(ts)
        end = start + self._size
        if self._watermark is not None and end + self._grace <= self._watermark:
            return AddResult(False, start, end, self._watermark)
        by_tweet = self._open.setdefault(start, {})
        window = by_tweet.get(tweet_id)
        if window is None:
            window = by_tweet[tweet_id] = WindowCounts(author_id)
        window.add(engagement_type, dwell_ms)
        self._watermark = ts if self._watermark is None else max(self._watermark, ts)
        return AddResult(True, start, end, self._watermark)

    def advance(self) -> list[ClosedWindow]:
        """Close and forget every window the watermark has passed, in (start, tweet_id) order."""
        if self._watermark is None:
            return []
        closed: list[ClosedWindow] = []
        for start in sorted(self._open):
            end = start + self._size
            if end + self._grace > self._watermark:
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
            "watermark": self._watermark,
            "open": [
                [start, tweet_id, self._open[start][tweet_id].to_state()]
                for start in sorted(self._open)
                for tweet_id in sorted(self._open[start])
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TumblingWindows:
        windows = cls(int(state["size"]), int(state["grace"]))
        windows._watermark = state["watermark"]
        for start, tweet_id, counts in state["open"]:
            windows._open.setdefault(int(start), {})[int(tweet_id)] = WindowCounts.from_state(counts)
        return windows


# --------------------------------------------------------------------------------------------
# Hopping windows (engagement velocity)


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
        hop = _floor_to(ts, self._hop)
        if self._newest_hop is not None and hop < self._oldest_kept(self._newest_hop):
            return False
        self._buckets[hop] = self._buckets.get(hop, 0) + n
        if self._newest_hop is None or hop > self._newest_hop:
            self._newest_hop = hop
            oldest = self._oldest_kept(hop)
            for expired in [start for start in self._buckets if start < oldest]:
                del self._buckets[expired]
        return True

    def velocity(self, at_ts: int) -> int:
        last = _floor_to(at_ts, self._hop)
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


# --------------------------------------------------------------------------------------------
# Session windows


@dataclass(frozen=True)
class ClosedSession:
    """A finished session: its first and last event times, so `length_ms = end - start`."""

    start: int
    end: int
    length_ms: int
    event_count: int
    dwell_ms_total: int


@dataclass
class _OpenSession:
    start: int
    end: int
    event_count: int
    dwell_ms_total: int

    def closed(self) -> ClosedSession:
        return ClosedSession(
            self.start, self.end, self.end - self.start, self.event_count, self.dwell_ms_total
        )


class Sessions(StoredState):
    """Session windows of one user: a session ends when no event follows within `gap_ms`.

    A session is a maximal run of events, in event time, whose neighbours are at most `gap_ms`
    apart. The watermark is the largest event time seen (or passed to `close_idle`); a session
    closes when `end + gap_ms + grace_ms < watermark`. With the default `grace_ms=0` that is:
    an event more than the gap after the session's last event closes it and starts a new one,
    and at most one session is open.

    Out of order events within the gap of an open session extend it (backwards too), and an
    event that bridges two open sessions merges them; more than one session can be open only
    with `grace_ms > 0`, which is the disorder a caller lets sessions wait for. An event is late,
    and counted nowhere but `late_events`, when its session's fate is already decided: it lies
    within the gap of (or before) a session already closed, or it joins no open session and is
    itself idle (`ts + gap_ms + grace_ms < watermark`). Events delayed by at most `grace_ms`
    behind the watermark are never late, and the sessions closed and open are always exactly
    those of the accepted events.
    """

    def __init__(self, gap_ms: int = SESSION_GAP_MS, grace_ms: int = 0) -> None:
        if gap_ms < 0 or grace_ms < 0:
            raise ValueError(f"gap ({gap_ms}) and grace ({grace_ms}) must not be negative")
        self._gap = gap_ms
        self._grace = grace_ms
        self._watermark: int | None = None
        # The last event time of the latest closed session: nothing may join it any more.
        self._closed_through: int | None = None
        # Sorted by start; sessions never overlap, so this is also their order by end.
        self._open: list[_OpenSession] = []
        self._late_events = 0

    @property
    def gap_ms(self) -> int:
        return self._gap

    @property
    def grace_ms(self) -> int:
        return self._grace

    @property
    def watermark(self) -> int | None:
        return self._watermark

    @property
    def late_events(self) -> int:
        return self._late_events

    def open_sessions(self) -> list[ClosedSession]:
        """The sessions still open, as they would close now (for reading, not emitting)."""
        return [session.closed() for session in self._open]

    def _touches_open(self, ts: int) -> bool:
        return any(s.start - self._gap <= ts <= s.end + self._gap for s in self._open)

    def is_late(self, ts: int) -> bool:
        """Whether `add(ts, ...)` would drop the event as late."""
        if self._closed_through is not None and ts <= self._closed_through + self._gap:
            return True
        if self._touches_open(ts):
            return False
        return self._watermark is not None and ts + self._gap + self._grace < self._watermark

    def add(self, ts: int, dwell_ms: int | None = None) -> list[ClosedSession]:
        """Count one event; returns the sessions its event time closes, oldest first."""
        if self.is_late(ts):
            self._late_events += 1
            return []
        merged = _OpenSession(ts, ts, 1, dwell_ms or 0)
        untouched: list[_OpenSession] = []
        for session in self._open:
            if session.start - self._gap <= ts <= session.end + self._gap:
                merged.start = min(merged.start, session.start)
                merged.end = max(merged.end, session.end)
                merged.event_count += session.event_count
                merged.dwell_ms_total += session.dwell_ms_total
            else:
                untouched.append(session)
        self._open = untouched
        self._open.append(merged)
        self._open.sort(key=lambda s: s.start)
        return self.close_idle(ts)

    def close_idle(self, watermark: int) -> list[ClosedSession]:
        """Close, oldest first, the sessions whose last event + gap + grace < `watermark`."""
        self._watermark = watermark if self._watermark is None else max(self._watermark, watermark)
        closed: list[ClosedSession] = []
        while self._open and self._open[0].end + self._gap + self._grace < self._watermark:
            session = self._open.pop(0)
            self._closed_through = (
                session.end if self._closed_through is None else max(self._closed_through, session.end)
            )
            closed.append(session.closed())
        return closed

    def to_state(self) -> dict[str, Any]:
        return {
            "gap": self._gap,
            "grace": self._grace,
            "watermark": self._watermark,
            "closed_through": self._closed_through,
            "late": self._late_events,
            "open": [[s.start, s.end, s.event_count, s.dwell_ms_total] for s in self._open],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Sessions:
        sessions = cls(int(state["gap"]), int(state["grace"]))
        sessions._watermark = state["watermark"]
        sessions._closed_through = state["closed_through"]
        sessions._late_events = int(state["late"])
        sessions._open = [_OpenSession(*(int(x) for x in s)) for s in state["open"]]
        return sessions
