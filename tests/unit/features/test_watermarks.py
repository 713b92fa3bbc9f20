"""Event time across source partitions (streams/features/windows/watermarks.py) and the windows
it closes."""

from __future__ import annotations

from streams.features.windows.tumbling import TumblingWindows
from streams.features.windows.watermarks import SourceWatermarks

MINUTE = 60_000


def test_the_watermark_is_the_slowest_active_partition_and_never_moves_back() -> None:
    marks = SourceWatermarks(idle_ms=5_000)
    marks.observe(0, 1_000, now_ms=0)
    marks.observe(1, 9_000, now_ms=0)
    assert marks.advance(now_ms=0) == 1_000
    marks.observe(0, 4_000, now_ms=1_000)
    assert marks.advance(now_ms=1_000) == 4_000
    # Partition 1 stays quiet past the idleness: partition 0 alone moves the watermark.
    marks.observe(0, 20_000, now_ms=7_000)
    assert marks.advance(now_ms=7_000) == 20_000
    # Partition 1 speaks again with older events: the watermark does not move back.
    marks.observe(1, 10_000, now_ms=8_000)
    assert marks.advance(now_ms=8_000) == 20_000


def test_when_every_partition_is_quiet_the_newest_event_time_counts() -> None:
    marks = SourceWatermarks(idle_ms=5_000)
    marks.observe(0, 1_000, now_ms=0)
    marks.observe(1, 9_000, now_ms=0)
    assert marks.advance(now_ms=6_000) == 9_000


def test_a_restored_state_counts_its_partitions_as_heard_from_at_its_first_advance() -> None:
    marks = SourceWatermarks(idle_ms=5_000)
    marks.observe(0, 1_000, now_ms=0)
    marks.observe(1, 9_000, now_ms=0)
    marks.advance(now_ms=0)
    restored = SourceWatermarks(idle_ms=5_000)
    restored.restore(marks.to_state())
    assert restored.advance(now_ms=100_000) == 1_000, "not idle right after a restart"
    assert restored.advance(now_ms=105_000) == 9_000


def test_one_partitions_later_event_does_not_close_a_window_another_partition_still_feeds() -> None:
    """The issue's scenario: likes spread over four source partitions, then an impression ten
    minutes later on one of them; every like counts, whatever order the partitions arrive in."""
    start = 100 * MINUTE
    windows = TumblingWindows(MINUTE, 10_000, idle_ms=30_000).configured(30_000, range(4))
    likes = [(p, start + 1_000 * (i + 1)) for i, p in enumerate((0, 1, 2, 3, 0, 1, 2))]
    # Partition 3 is read first, and its later impression arrives before the others' likes.
    order = [e for e in likes if e[0] == 3] + [(3, start + 10 * MINUTE)] + [e for e in likes if e[0] != 3]
    for partition, ts in order:
        kind = "impression" if ts == start + 10 * MINUTE else "like"
        assert windows.add(9, 7, kind, ts, None, source_partition=partition, now_ms=0).accepted
    assert windows.advance(now_ms=0) == [], "partitions 0-2 are behind: the window stays open"
    (closed,) = windows.advance(now_ms=31_000)
    assert closed.window_start == start and closed.counts == {"like": 7}


def test_an_event_later_than_every_active_partition_allows_is_late() -> None:
    start = 100 * MINUTE
    windows = TumblingWindows(MINUTE, 10_000, idle_ms=30_000)
    for partition in (0, 1):
        windows.add(9, 7, "like", start + 5 * MINUTE, None, source_partition=partition, now_ms=0)
    assert windows.add(9, 7, "like", start + 1_000, None, source_partition=0, now_ms=0).late


def test_windows_close_when_a_quiet_partition_stops_holding_them_open() -> None:
    start = 100 * MINUTE
    windows = TumblingWindows(MINUTE, 10_000, idle_ms=30_000)
    windows.add(9, 7, "like", start + 1_000, None, source_partition=0, now_ms=0)
    windows.add(9, 7, "like", start + 5 * MINUTE, None, source_partition=1, now_ms=0)
    assert windows.advance(now_ms=10_000) == [], "partition 0 may still send events of the window"
    (closed,) = windows.advance(now_ms=31_000)
    assert closed.counts == {"like": 1}
    restored = TumblingWindows.decode(windows.encode())
    assert restored == windows and restored.watermark == start + 5 * MINUTE


def test_an_expected_partition_that_has_sent_nothing_holds_the_watermark_until_quiet() -> None:
    marks = SourceWatermarks(idle_ms=5_000, expected=range(2))
    marks.observe(0, 9_000, now_ms=0)
    assert marks.advance(now_ms=0) is None
    assert marks.advance(now_ms=5_000) == 9_000
