"""What every stateful node shares: a RocksDB store per input partition, opened on first use,
and the rule that a message at or below the store's recorded offset was already applied.
"""

from __future__ import annotations

from pathlib import Path

from faust.types import TP

from streams.state.partition_store import PartitionStore


class NodeState:
    """The partition stores of one processing node, under `<data_dir>/<node>/<topic>-<p>`."""

    def __init__(self, name: str, data_dir: Path) -> None:
        self.name = name
        self._root = data_dir / name
        self._stores: dict[TP, PartitionStore] = {}

    def store(self, tp: TP) -> PartitionStore:
        store = self._stores.get(tp)
        if store is None:
            store = PartitionStore(self._root / f"{tp.topic}-{tp.partition}")
            self._stores[tp] = store
        return store

    def already_applied(self, tp: TP, offset: int) -> bool:
        """True for a message redelivered after a crash: its effects are already in the store."""
        return offset <= self.store(tp).applied_offset(tp.topic)

    def commit(self, last_offsets: dict[TP, int]) -> None:
        for tp, offset in last_offsets.items():
            self.store(tp).commit({tp.topic: offset})

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()
