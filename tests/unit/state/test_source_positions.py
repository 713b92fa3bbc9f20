"""Dropping what a restarted parser sends again: source positions per source partition."""

from pathlib import Path

from streams.state.node_state import SourcePositions
from streams.state.partition_store import PartitionStore


def test_positions_at_or_below_the_applied_one_are_repeats_per_source_partition(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    first = SourcePositions(store, "route")
    assert first.advance([0, 10, 0]) and first.advance([0, 10, 1]) and first.advance([1, 3, 0])
    assert not first.advance([0, 10, 1]) and not first.advance([0, 9, 5])
    assert first.advance([0, 11, 0])
    first.save()
    store.commit({"route": 7})
    store.close()

    # The next batch (after a restart) reads what the last one committed.
    reopened = PartitionStore(tmp_path / "p0")
    after = SourcePositions(reopened, "route")
    assert not after.advance([0, 11, 0]) and not after.advance([1, 3, 0])
    assert after.advance([1, 4, 0]) and after.advance([2, 0, 0])


def test_a_batch_that_only_repeats_writes_nothing(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    positions = SourcePositions(store, "route")
    positions.advance([0, 5, 0])
    positions.save()
    store.commit({"route": 1})
    repeats = SourcePositions(store, "route")
    assert not repeats.advance([0, 5, 0])
    repeats.save()
    assert store.get(b"\x00source:route/0") == b"5:0"
