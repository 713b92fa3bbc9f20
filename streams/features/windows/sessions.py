"""Session windows: a key's events split by an inactivity gap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.features.windows.stored import StoredState

SESSION_GAP_MS = 1_800_000


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
