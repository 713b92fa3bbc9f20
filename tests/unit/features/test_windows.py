"""Windows checked against brute force: every expectation is recomputed from the event list itself.

Streams are random (seeded), in order, with disorder bounded by the grace (nothing may be late),
or wildly out of order (late events must appear and be exactly the ones the rules name). State is
round-tripped through bytes mid-stream to prove that a restored state behaves like the original.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import NamedTuple

import pytest

from streams.features.windows.dwell import DwellStats
from streams.features.windows.hopping import HoppingCounter
from streams.features.windows.sessions import ClosedSession, Sessions
from streams.features.windows.tumbling import ClosedWindow, TumblingWindows, WindowCounts, engagement_rate

T0 = 1_700_000_000_000
SKETCH_ACCURACY = 0.01
TYPES = ("impression", "impression", "impression", "like", "retweet", "reply", "dwell", "click")
SEEDS = range(8)


def exact_quantile(values: list[int], q: float) -> int:
    """The value of rank floor(q * (n - 1)) in the sorted values: the rank DDSketch estimates."""
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def assert_within_accuracy(estimate: float | None, exact: int) -> None:
    assert estimate is not None
    assert abs(estimate - exact) <= SKETCH_ACCURACY * abs(exact) + 1e-9, (estimate, exact)


def assert_dwell_matches(summary: dict[str, object], values: list[int]) -> None:
    assert summary["count"] == len(values)
    assert summary["sum"] == sum(values)
    if not values:
        assert summary["avg"] is None and summary["min"] is None and summary["max"] is None
        assert summary["p50"] is None and summary["p90"] is None and summary["p99"] is None
        return
    assert summary["avg"] == pytest.approx(sum(values) / len(values))
    assert summary["min"] == min(values) and summary["max"] == max(values)
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        estimate = summary[name]
        assert isinstance(estimate, float)
        assert_within_accuracy(estimate, exact_quantile(values, q))


def dwell_values(rng: random.Random, n: int) -> list[int]:
    """Heavy-tailed dwell times, with some zeros, the shape real dwell has."""
    return [0 if rng.random() < 0.05 else int(rng.lognormvariate(8, 1.5)) for _ in range(n)]


# --------------------------------------------------------------------------------------------
# DwellStats


@pytest.mark.parametrize("seed", SEEDS)
def test_dwell_percentiles_are_within_the_sketch_accuracy_of_exact_ones(seed: int) -> None:
    rng = random.Random(seed)
    values = dwell_values(rng, rng.randint(1, 3000))
    stats = DwellStats()
    for v in values:
        stats.add(v)
    assert_dwell_matches(dict(stats.to_dict()), values)
    for q in (0.0, 0.25, 0.75, 1.0):
        assert_within_accuracy(stats.quantile(q), exact_quantile(values, q))


def test_dwell_percentiles_are_exact_at_the_extremes_and_handle_negatives() -> None:
    stats = DwellStats()
    for v in (-500, -3, 0, 0, 7, 1000):
        stats.add(v)
    assert stats.quantile(0.0) == -500.0 and stats.quantile(1.0) == 1000.0
    assert stats.quantile(0.5) == 0.0
    assert_within_accuracy(stats.quantile(0.2), -3)
    assert DwellStats.decode(stats.encode()) == stats
    with pytest.raises(ValueError):
        stats.quantile(1.5)


def test_empty_dwell_stats_report_nothing_but_zero_count() -> None:
    stats = DwellStats()
    assert_dwell_matches(dict(stats.to_dict()), [])
    assert DwellStats.decode(stats.encode()) == stats
    other = DwellStats()
    other.merge(stats)
    assert other == stats


@pytest.mark.parametrize("seed", SEEDS)
def test_merged_dwell_stats_equal_stats_of_all_values(seed: int) -> None:
    rng = random.Random(seed)
    values = dwell_values(rng, 2000)
    parts: list[DwellStats] = [DwellStats() for _ in range(rng.randint(2, 6))]
    for v in values:
        rng.choice(parts).add(v)
    merged = DwellStats()
    for part in parts:
        merged.merge(part)
    whole = DwellStats()
    for v in values:
        whole.add(v)
    assert merged.to_dict() == whole.to_dict()
    assert merged.encode() == whole.encode(), "the encoding is canonical: it ignores arrival order"
    assert_dwell_matches(dict(merged.to_dict()), values)


@pytest.mark.parametrize("seed", SEEDS)
def test_dwell_stats_round_trip_exactly_and_keep_working(seed: int) -> None:
    rng = random.Random(seed)
    values = dwell_values(rng, 500) + [-rng.randint(1, 100) for _ in range(10)]
    original = DwellStats()
    for v in values[:300]:
        original.add(v)
    data = original.encode()
    restored = DwellStats.decode(data)
    assert restored == original and restored.encode() == data
    assert restored.to_dict() == original.to_dict()
    for v in values[300:]:
        original.add(v)
        restored.add(v)
    assert restored.encode() == original.encode()
    assert_dwell_matches(dict(restored.to_dict()), values)
    mixed = DwellStats.decode(data)
    mixed.merge(DwellStats.decode(data))
    assert mixed.count == 600


def test_decode_refuses_other_versions() -> None:
    with pytest.raises(ValueError):
        DwellStats.decode(b'{"v": 99}')
    with pytest.raises(ValueError):
        TumblingWindows.decode(b"[1, 2]")


# --------------------------------------------------------------------------------------------
# Tumbling windows


class Engagement(NamedTuple):
    tweet_id: int
    author_id: int
    type: str
    ts: int
    dwell_ms: int | None


def engagement_stream(rng: random.Random, n: int, max_delay_ms: int) -> list[Engagement]:
    """Events in arrival order: event times that rise, each pulled back by up to `max_delay_ms`.

    No event is then more than `max_delay_ms` behind the largest event time before it.
    """
    events = []
    clock = T0 + rng.randint(0, 60_000)
    for _ in range(n):
        clock += rng.randint(0, 700)
        tweet_id = rng.randint(1, 12)
        dwell = rng.randint(0, 40_000) if rng.random() < 0.4 else None
        ts = clock - rng.randint(0, max_delay_ms)
        events.append(Engagement(tweet_id, tweet_id * 1000 + 7, rng.choice(TYPES), ts, dwell))
    return events


class Reference(NamedTuple):
    late: list[Engagement]
    windows: dict[tuple[int, int], list[Engagement]]
    watermark: int


def reference_windows(events: list[Engagement], size: int, grace: int) -> Reference:
    """Brute force: the watermark is the largest ts before an event; late means its window's
    end plus grace is at or below that watermark."""
    late: list[Engagement] = []
    windows: dict[tuple[int, int], list[Engagement]] = {}
    watermark: int | None = None
    for e in events:
        start = (e.ts // size) * size
        if watermark is not None and start + size + grace <= watermark:
            late.append(e)
            continue
        windows.setdefault((e.tweet_id, start), []).append(e)
        watermark = e.ts if watermark is None else max(watermark, e.ts)
    assert watermark is not None
    return Reference(late, windows, watermark)


def check_closed_window(closed: ClosedWindow, events: list[Engagement], size: int) -> None:
    assert closed.window_end - closed.window_start == size and closed.window_start % size == 0
    assert all(closed.window_start <= e.ts < closed.window_end for e in events)
    assert closed.author_id == events[0].author_id
    counts = Counter(e.type for e in events)
    assert closed.counts == dict(counts)
    impressions = counts["impression"]
    if impressions:
        assert closed.engagement_rate == pytest.approx((len(events) - impressions) / impressions)
    else:
        assert closed.engagement_rate is None
    assert_dwell_matches(dict(closed.dwell), [e.dwell_ms for e in events if e.dwell_ms is not None])
    record = closed.to_record()
    assert record["final"] is True and record["counts"] == dict(counts)


def run_tumbling(
    events: list[Engagement], size: int, grace: int, rng: random.Random
) -> tuple[list[Engagement], list[list[ClosedWindow]], TumblingWindows]:
    """Feed the events, advancing and round-tripping the state through bytes at random points."""
    windows = TumblingWindows(size, grace)
    late: list[Engagement] = []
    batches: list[list[ClosedWindow]] = []
    for e in events:
        result = windows.add(e.tweet_id, e.author_id, e.type, e.ts, e.dwell_ms)
        assert result.window_start <= e.ts < result.window_end
        if result.late:
            late.append(e)
        if rng.random() < 0.3:
            batches.append(windows.advance())
        if rng.random() < 0.05:
            data = windows.encode()
            windows = TumblingWindows.decode(data)
            assert windows.encode() == data
    batches.append(windows.advance())
    return late, batches, windows


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("size", "grace", "max_delay"), [(60_000, 10_000, 0), (60_000, 10_000, 10_000)])
def test_tumbling_windows_within_grace_count_every_event(
    seed: int, size: int, grace: int, max_delay: int
) -> None:
    rng = random.Random(seed)
    events = engagement_stream(rng, 1500, max_delay)
    late, batches, windows = run_tumbling(events, size, grace, rng)
    assert late == [], "disorder within the grace is never late"

    # Everything closed so far, plus what a far-future event closes, is every event's window.
    windows.add(-1, -1, "impression", max(e.ts for e in events) + size + grace + size, None)
    closed = [w for batch in batches for w in batch] + windows.advance()
    by_key = {(w.tweet_id, w.window_start): w for w in closed}
    assert len(by_key) == len(closed), "no window closes twice"
    grouped: dict[tuple[int, int], list[Engagement]] = {}
    for e in events:
        grouped.setdefault((e.tweet_id, e.ts - e.ts % size), []).append(e)
    assert set(by_key) == set(grouped)
    for key, group in grouped.items():
        check_closed_window(by_key[key], group, size)
    assert windows.open_window_count() == 1, "only the far-future window is left"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("size", "grace"), [(60_000, 10_000), (60_000, 0), (10_000, 30_000)])
def test_tumbling_windows_out_of_order_close_once_and_drop_exactly_the_late(
    seed: int, size: int, grace: int
) -> None:
    rng = random.Random(seed)
    events = engagement_stream(rng, 1500, max_delay_ms=150_000)
    late, batches, windows = run_tumbling(events, size, grace, rng)
    ref = reference_windows(events, size, grace)
    assert late == ref.late
    assert late, "the stream is disordered enough to have late events"
    assert windows.watermark == ref.watermark

    closed = [w for batch in batches for w in batch]
    keys = [(w.tweet_id, w.window_start) for w in closed]
    assert len(set(keys)) == len(keys), "no window closes twice"
    expected_closed = {key for key in ref.windows if key[1] + size + grace <= ref.watermark}
    assert set(keys) == expected_closed
    for batch in batches:
        assert [(w.window_start, w.tweet_id) for w in batch] == sorted(
            (w.window_start, w.tweet_id) for w in batch
        )
    for w in closed:
        check_closed_window(w, ref.windows[(w.tweet_id, w.window_start)], size)
    assert windows.open_window_count() == len(ref.windows) - len(expected_closed)


def test_a_closed_window_is_never_reopened_by_a_late_event() -> None:
    windows = TumblingWindows(60_000, 10_000)
    start = T0 - T0 % 60_000
    assert windows.add(1, 9, "impression", start + 5, 100).accepted
    assert windows.add(1, 9, "like", start + 59_999, None).accepted
    assert windows.add(2, 8, "impression", start + 69_999, None).accepted, "next window, no close"
    assert windows.advance() == []
    assert windows.add(1, 9, "like", start + 30_000, None).accepted, "still within the grace"

    boundary = windows.add(2, 8, "impression", start + 70_000, None)
    assert boundary.accepted and boundary.watermark == start + 70_000
    (closed,) = windows.advance()
    assert (closed.tweet_id, closed.window_start, closed.window_end) == (1, start, start + 60_000)
    assert closed.counts == {"impression": 1, "like": 2}
    assert closed.engagement_rate == 2.0
    assert windows.advance() == [], "closed exactly once"

    late = windows.add(1, 9, "like", start + 1, 50)
    assert late.late and (late.window_start, late.window_end) == (start, start + 60_000)
    assert windows.advance() == [], "a late event does not reopen the window"
    assert windows.watermark == start + 70_000, "a late event does not move the watermark"
    restored = TumblingWindows.decode(windows.encode())
    assert restored == windows
    assert restored.add(1, 9, "like", start + 2, None).late, "not after a restore either"


def test_windows_align_to_epoch_multiples_of_the_size() -> None:
    windows = TumblingWindows(60_000, 0)
    assert windows.window_start(120_000) == 120_000
    assert windows.window_start(179_999) == 120_000
    assert windows.window_start(-1) == -60_000
    result = windows.add(5, 6, "like", T0, None)
    assert result.window_start % 60_000 == 0 and result.window_start <= T0 < result.window_end
    with pytest.raises(ValueError):
        TumblingWindows(0, 10)


def test_engagement_rate_counts_every_type_but_impressions() -> None:
    assert engagement_rate({"like": 3}) is None
    assert engagement_rate({"impression": 4, "like": 1, "reply": 1}) == 0.5
    counts = WindowCounts(7)
    counts.add("impression", None)
    counts.add("dwell", 1200)
    assert WindowCounts.decode(counts.encode()) == counts
    assert counts.dwell.sum == 1200


# --------------------------------------------------------------------------------------------
# Hopping windows


def reference_velocity(timestamps: list[int], at_ts: int, size: int, hop: int) -> int:
    """Events in the `size / hop` hops ending with the hop that holds `at_ts`."""
    last_hop_start = (at_ts // hop) * hop
    return sum(1 for ts in timestamps if last_hop_start + hop - size <= ts < last_hop_start + hop)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("max_delay", [0, 90_000, 600_000])
def test_velocity_matches_brute_force_at_and_after_the_newest_event(seed: int, max_delay: int) -> None:
    rng = random.Random(seed)
    size, hop = 300_000, 60_000
    counter = HoppingCounter(size, hop)
    seen: list[int] = []
    clock = T0
    for i in range(800):
        clock += rng.randint(0, 15_000) if rng.random() < 0.95 else rng.randint(0, 900_000)
        ts = clock - rng.randint(0, max_delay)
        newest_hop = max(((t // hop) * hop for t in seen), default=None)
        accepted = counter.add(ts)
        too_old = newest_hop is not None and (ts // hop) * hop < newest_hop + hop - size
        assert accepted == (not too_old), "only events no current window can hold are refused"
        seen.append(ts)
        newest = max(seen)
        for at_ts in (newest, newest + rng.randint(0, size + 2 * hop)):
            assert counter.velocity(at_ts) == reference_velocity(seen, at_ts, size, hop)
        assert len(counter.to_state()["buckets"]) <= size // hop, "old buckets are dropped"
        if i % 97 == 0:
            data = counter.encode()
            counter = HoppingCounter.decode(data)
            assert counter.encode() == data


def test_velocity_expires_by_event_time_only() -> None:
    counter = HoppingCounter()
    for k in range(10):
        counter.add(T0 + k * 1000)
    assert counter.velocity(T0 + 9000) == 10
    assert counter.velocity(T0 + 4 * 60_000) == 10, "still inside five minutes of hops"
    assert counter.velocity(T0 + 60 * 60_000) == 0, "an hour later in event time nothing is left"
    assert counter.velocity(T0 + 9000) == 10, "reading at a later time expires nothing"
    counter.add(T0 + 60 * 60_000)
    assert counter.velocity(T0 + 60 * 60_000) == 1
    assert not counter.add(T0), "an hour-old event finds its hop gone"
    with pytest.raises(ValueError):
        HoppingCounter(300_000, 70_000)


# --------------------------------------------------------------------------------------------
# Sessions


class Activity(NamedTuple):
    ts: int
    dwell_ms: int | None


def reference_sessions(events: list[Activity], gap: int) -> list[ClosedSession]:
    """Brute force: sort by time, split wherever consecutive events are more than `gap` apart."""
    sessions: list[ClosedSession] = []
    group: list[Activity] = []
    for e in sorted(events):
        if group and e.ts - group[-1].ts > gap:
            sessions.append(summarise(group))
            group = []
        group.append(e)
    if group:
        sessions.append(summarise(group))
    return sessions


def summarise(group: list[Activity]) -> ClosedSession:
    start, end = group[0].ts, group[-1].ts
    return ClosedSession(start, end, end - start, len(group), sum(e.dwell_ms or 0 for e in group))


def activity_stream(rng: random.Random, n: int, gap: int, max_delay: int) -> list[Activity]:
    events = []
    clock = T0
    for _ in range(n):
        # Mostly short pauses, sometimes a pause longer than the gap, sometimes exactly the gap.
        pause = rng.choice([rng.randint(0, gap // 3), rng.randint(gap + 1, 3 * gap), gap])
        clock += pause
        dwell = rng.randint(0, 20_000) if rng.random() < 0.5 else None
        events.append(Activity(clock - rng.randint(0, max_delay), dwell))
    return events


def run_sessions(
    events: list[Activity], gap: int, grace: int, rng: random.Random
) -> tuple[list[Activity], list[ClosedSession], Sessions]:
    sessions = Sessions(gap, grace)
    late: list[Activity] = []
    closed: list[ClosedSession] = []
    for e in events:
        expect_late = sessions.is_late(e.ts)
        before = sessions.late_events
        closed.extend(sessions.add(e.ts, e.dwell_ms))
        assert sessions.late_events - before == int(expect_late)
        if expect_late:
            late.append(e)
        if rng.random() < 0.05:
            data = sessions.encode()
            sessions = Sessions.decode(data)
            assert sessions.encode() == data
    return late, closed, sessions


GAP = 1_800_000


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("grace", "max_delay"), [(0, 0), (600_000, 600_000), (3 * GAP, 3 * GAP)])
def test_sessions_split_by_the_gap_with_disorder_within_the_grace(
    seed: int, grace: int, max_delay: int
) -> None:
    rng = random.Random(seed)
    events = activity_stream(rng, 400, GAP, max_delay)
    late, closed, sessions = run_sessions(events, GAP, grace, rng)
    assert late == [], "disorder within the grace is never late"
    still_open = sessions.open_sessions()
    expected = reference_sessions(events, GAP)
    assert closed + still_open == expected, "closed oldest first, then what is open"
    if grace == 0:
        assert len(still_open) == 1, "without grace only the latest session stays open"
    flushed = sessions.close_idle(max(e.ts for e in events) + GAP + grace + 1)
    assert flushed == still_open and sessions.open_sessions() == []
    assert sessions.close_idle(max(e.ts for e in events) + 10 * GAP) == [], "closed once"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("grace", [0, 600_000])
def test_sessions_out_of_order_are_the_sessions_of_the_accepted_events(seed: int, grace: int) -> None:
    rng = random.Random(seed)
    events = activity_stream(rng, 400, GAP, max_delay=4 * GAP)
    late, closed, sessions = run_sessions(events, GAP, grace, rng)
    assert late, "the stream is disordered enough to have late events"
    accepted = list(events)
    for e in late:
        accepted.remove(e)
    expected = reference_sessions(accepted, GAP)
    assert sorted(closed, key=lambda s: s.start) + sessions.open_sessions() == expected
    assert len({s.start for s in closed}) == len(closed), "no session closes twice"
    watermark = max(e.ts for e in accepted)
    assert all(s.end + GAP + grace < watermark for s in closed), "closed only once idle"
    assert all(s.end + GAP + grace >= watermark for s in sessions.open_sessions())
    assert sessions.late_events == len(late)


def test_an_event_more_than_the_gap_later_closes_the_session() -> None:
    sessions = Sessions(gap_ms=1000)
    assert sessions.add(0, 5) == []
    assert sessions.add(600, None) == []
    assert sessions.add(1600, 2) == [], "exactly the gap after the last event: same session"
    (first,) = sessions.add(3000, 1)
    assert first == ClosedSession(start=0, end=1600, length_ms=1600, event_count=3, dwell_ms_total=7)
    assert sessions.is_late(1000) and sessions.add(1000, 99) == [], "it would join a closed session"
    assert sessions.is_late(2600), "it would bridge the closed session and the open one"
    assert sessions.late_events == 1, "is_late only asks"
    assert sessions.add(2601, None) == [], "within the gap before the open session: extends it"
    assert sessions.open_sessions() == [ClosedSession(2601, 3000, 399, 2, 1)]
    assert sessions.close_idle(4000) == [], "last event + gap == watermark is not yet idle"
    (second,) = sessions.close_idle(4001)
    assert second == ClosedSession(2601, 3000, 399, 2, 1)
    assert sessions.is_late(3500), "the watermark from close_idle holds for later events"
    assert sessions.add(5000, None) == [] and sessions.open_sessions()[0].start == 5000

    alone = Sessions(gap_ms=1000)
    alone.add(5000, None)
    assert not alone.is_late(4000), "within the gap before the open session"
    assert alone.is_late(3999), "more than the gap before the only open session"


def test_an_event_bridging_two_open_sessions_merges_them() -> None:
    sessions = Sessions(gap_ms=100, grace_ms=1000)
    sessions.add(0, 1)
    sessions.add(300, 2)
    assert [s.start for s in sessions.open_sessions()] == [0, 300]
    sessions.add(200, 4)
    assert [s.start for s in sessions.open_sessions()] == [0, 200]
    sessions.add(100, 8)
    (merged,) = sessions.open_sessions()
    assert merged == ClosedSession(0, 300, 300, 4, 15)
    restored = Sessions.decode(sessions.encode())
    assert restored == sessions
    assert restored.close_idle(1401) == [merged]
