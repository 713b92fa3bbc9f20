"""The stored form every window state shares: versioned JSON, exact round trips, equality."""

from __future__ import annotations

from typing import Any, Self

import orjson

FORMAT_VERSION = 1
"""Written into every encoded state; a state of another version is refused, not misread."""

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


def floor_to(ts: int, step: int) -> int:
    """The multiple of `step` at or below `ts`: epoch-aligned, also for negative times."""
    return ts - ts % step
