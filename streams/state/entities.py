"""Per-entity state in a partition store: how a node keys, decodes and folds it, once per batch."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from streams.state.partition_store import PartitionStore

Key = TypeVar("Key", bound=Hashable)
State = TypeVar("State")


@dataclass(frozen=True)
class EntityCodec(Generic[Key, State]):
    """How one node keeps a per-entity state in its store."""

    key: Callable[[Key], bytes]
    decode: Callable[[bytes], State]
    encode: Callable[[State], bytes]


def update_entities(
    store: PartitionStore,
    events: Iterable[dict[str, Any]],
    keys_of: Callable[[dict[str, Any]], Iterable[Key]],
    codec: EntityCodec[Key, State],
    fold: Callable[[State | None, dict[str, Any]], State],
) -> dict[Key, State]:
    """Fold each event into the state of every entity it touches (each state read and decoded
    once per batch), write the new states back, and return them by entity."""
    touched: dict[Key, State] = {}
    for event in events:
        for key in keys_of(event):
            current = touched.get(key)
            if current is None:
                stored = store.get(codec.key(key))
                current = None if stored is None else codec.decode(stored)
            touched[key] = fold(current, event)
    for key, state in touched.items():
        store.put(codec.key(key), codec.encode(state))
    return touched
