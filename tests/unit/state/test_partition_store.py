from pathlib import Path

from streams.state.dedup import BUCKET_MS, Deduplicator, Seen
from streams.state.keys import CHANGELOG_OFFSET
from streams.state.partition_store import Changes, PartitionStore


def test_commit_is_atomic_with_offsets_and_survives_reopen(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    assert store.applied_offset("t") == -1
    store.put(b"a", b"1")
    store.put(b"b", b"2")
    store.delete(b"b")
    assert store.get(b"a") == b"1" and store.get(b"b") is None
    store.commit({"t": 41})
    store.put(b"c", b"uncommitted")
    store.close()

    reopened = PartitionStore(tmp_path / "p0")
    assert reopened.applied_offset("t") == 41
    assert reopened.get(b"a") == b"1"
    assert reopened.get(b"c") is None, "a buffered write must not land without its commit"


def test_delete_range_drops_committed_and_buffered_keys(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    store.put(b"k1", b"x")
    store.commit({})
    store.put(b"k2", b"y")
    store.put(b"z", b"kept")
    store.delete_range(b"k", b"l")
    store.commit({})
    assert store.get(b"k1") is None and store.get(b"k2") is None
    assert store.get(b"z") == b"kept"


def test_dedup_recognises_replays_and_refuses_what_it_has_forgotten(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    dedup = Deduplicator(store, retention_ms=2 * BUCKET_MS)
    t0 = 1_700_000_000_000
    assert dedup.check("e1", t0) is Seen.FIRST
    assert dedup.check("e1", t0) is Seen.DUPLICATE, "a duplicate within the batch"
    dedup.expire()
    store.commit({"t": 0})
    again = Deduplicator(store, 2 * BUCKET_MS)
    assert again.check("e1", t0) is Seen.DUPLICATE, "a replay after commit and reopen"
    assert again.check("e2", t0 - BUCKET_MS) is Seen.FIRST, "late but within the retention"

    assert again.check("e3", t0 + 10 * BUCKET_MS) is Seen.FIRST
    again.expire()
    store.commit({"t": 1})
    assert again.check("e1", t0) is Seen.TOO_OLD, "older than the horizon: cannot be checked"
    assert store.get(b"dedup:") is None
    reopened = Deduplicator(store, 2 * BUCKET_MS)
    assert reopened.horizon_ms == t0 + 8 * BUCKET_MS, "the watermark survives a restart"
    assert reopened.check("e3", t0 + 10 * BUCKET_MS) is Seen.DUPLICATE


def test_scan_prefix_merges_buffered_writes_and_deletes(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    for key in (b"fw:1:10", b"fw:1:11", b"fw:1:12", b"fw:10:1", b"fw:2:1", b"fx"):
        store.put(key, b"")
    store.commit({})
    store.delete(b"fw:1:11")
    store.put(b"fw:1:13", b"x")
    assert [k for k, _ in store.scan_prefix(b"fw:1:")] == [b"fw:1:10", b"fw:1:12", b"fw:1:13"]
    store.commit({})
    assert [k for k, _ in store.scan_prefix(b"fw:1:")] == [b"fw:1:10", b"fw:1:12", b"fw:1:13"]
    everything = [k for k, _ in store.scan_prefix(b"fw:")]
    assert everything == sorted([b"fw:1:10", b"fw:1:12", b"fw:1:13", b"fw:10:1", b"fw:2:1"])


def test_changelog_record_round_trips_every_kind_of_change() -> None:
    from streams.state import changelog
    from streams.state.partition_store import Changes

    changes = Changes(
        puts={b"a": b"1", b"b": None, b"\x00bin": bytes(range(256)), b"empty": b""},
        ranges=[(b"dedup:\x00", b"dedup:\x7f")],
        offsets={"engagement_events": 41, "content_events": 0},
    )
    record = changelog.decode(changelog.encode("engagement_events-3", changes))
    assert record == changelog.ChangelogRecord("engagement_events-3", changes, None)
    part = changelog.SnapshotPart(start=17, last=True)
    encoded = changelog.encode("engagement_events-3", changes, part)
    assert changelog.decode(encoded) == changelog.ChangelogRecord("engagement_events-3", changes, part)
    assert changelog.peek_store(encoded) == "engagement_events-3"


def test_a_store_rebuilt_from_changelog_records_equals_the_original(tmp_path: Path) -> None:
    from streams.state import changelog

    original = PartitionStore(tmp_path / "a")
    records = []
    for i in range(5):
        original.put(f"k{i}".encode(), str(i).encode())
        original.delete(b"k0")
        records.append(changelog.encode("s", original.take_changes({"t": i})))
        original.apply(changelog.decode(records[-1]).changes, i)
    replica = PartitionStore(tmp_path / "b")
    for offset, record in enumerate(records):
        replica.apply(changelog.decode(record).changes, offset)
    keys = [b"k0", b"k1", b"k2", b"k3", b"k4"]
    assert [replica.get(k) for k in keys] == [original.get(k) for k in keys] == [None, b"1", b"2", b"3", b"4"]
    assert replica.applied_offset("t") == 4 and replica.changelog_offset() == 4


def test_standby_partitions_follow_each_owned_one_and_wrap() -> None:
    from topologies.topics import standby_partitions

    assert standby_partitions({0, 1}, 4, 1) == {2}
    assert standby_partitions({3}, 4, 2) == {0, 1}
    assert standby_partitions({0, 1, 2, 3}, 4, 1) == set()


def test_a_snapshot_loaded_in_parts_replaces_what_a_stale_store_held(tmp_path: Path) -> None:
    original = PartitionStore(tmp_path / "a")
    for i in range(5):
        original.put(f"k{i}".encode(), str(i).encode())
    original.commit({"t": 9})
    original.apply(Changes({}, [], {}), changelog_offset=40)
    entries = dict(original.items())
    assert b"k0" in entries and CHANGELOG_OFFSET not in entries

    stale = PartitionStore(tmp_path / "b")
    stale.put(b"gone", b"x")
    stale.commit({"t": 2})
    assert stale.applied_offset("t") == 2
    parts = [dict(list(entries.items())[:3]), dict(list(entries.items())[3:])]
    stale.load_snapshot_part(parts[0], first=True, last_at=None)
    assert stale.changelog_offset() == -1  # interrupted here, it would load again
    stale.load_snapshot_part(parts[1], first=False, last_at=41)
    assert dict(stale.items()) == entries
    assert stale.get(b"gone") is None
    assert stale.applied_offset("t") == 9
    assert stale.changelog_offset() == 41
