"""A user's activity features: sessions (30-minute gap), temporal and contextual signals.

Pure: `apply_activity` folds one `user_activity_events` event into the user's state, and
`activity_features` reads the feature family off it (names in schemas/FEATURES.md). A session
closes when the user's next event comes more than the gap after the session's last one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.features.decay import HOUR_MS
from streams.features.windows.sessions import Sessions

DAY_HOURS = 24


@dataclass
class UserActivity:
    sessions: Sessions = field(default_factory=Sessions)
    closed: int = 0
    closed_length_ms: int = 0
    closed_events: int = 0
    closed_dwell_ms: int = 0
    last_session_end: int | None = None
    last_ts: int = 0
    surfaces: dict[str, int] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)


def apply_activity(state: UserActivity | None, event: dict[str, Any]) -> UserActivity:
    state = state or UserActivity()
    for closed in state.sessions.add(event["ts"], event.get("dwell_ms")):
        state.closed += 1
        state.closed_length_ms += closed.length_ms
        state.closed_events += closed.event_count
        state.closed_dwell_ms += closed.dwell_ms_total
        state.last_session_end = max(state.last_session_end or closed.end, closed.end)
    state.last_ts = max(state.last_ts, event["ts"])
    for name, counts in (("surface", state.surfaces), ("device", state.devices)):
        value = event.get(name)
        if value:
            counts[value] = counts.get(value, 0) + 1
    return state


def activity_features(state: UserActivity) -> dict[str, float]:
    features: dict[str, float] = {
        "session.count": float(state.closed),
        "temporal.hour_of_day": float(state.last_ts // HOUR_MS % DAY_HOURS),
    }
    if state.closed:
        features["session.length_ms.avg"] = state.closed_length_ms / state.closed
        features["session.events.avg"] = state.closed_events / state.closed
        features["session.dwell_ms.total"] = float(state.closed_dwell_ms)
    current = state.sessions.open_sessions()
    if current:
        features["session.current.length_ms"] = float(current[-1].length_ms)
        features["session.current.events"] = float(current[-1].event_count)
    if state.last_session_end is not None:
        features["temporal.since_last_session_ms"] = float(state.last_ts - state.last_session_end)
    for surface, n in state.surfaces.items():
        features[f"context.surface.{surface}.total"] = float(n)
    for device, n in state.devices.items():
        features[f"context.device.{device}.total"] = float(n)
    return features


def encode(state: UserActivity) -> bytes:
    fields = {k: v for k, v in vars(state).items() if k != "sessions"}
    return orjson.dumps({**fields, "sessions": state.sessions.to_state()})


def decode(raw: bytes) -> UserActivity:
    fields = orjson.loads(raw)
    sessions = Sessions.from_state(fields.pop("sessions"))
    return UserActivity(sessions=sessions, **fields)
