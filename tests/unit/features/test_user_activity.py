import random

from streams.features.user_activity import activity_features, apply_activity, decode, encode

GAP = 1_800_000


def test_sessions_split_by_the_gap_match_a_reference() -> None:
    rng = random.Random(2)
    ts = 1_700_000_000_000
    stamps = []
    for _ in range(300):
        ts += rng.choice([1_000, 60_000, 600_000, GAP + 1, 3 * GAP])
        stamps.append(ts)
    state = None
    for i, t in enumerate(stamps):
        state = apply_activity(state, {"ts": t, "dwell_ms": 10, "surface": "home", "device": f"d{i % 2}"})
        state = decode(encode(state))
    assert state is not None
    # Reference: split the sorted stamps where the gap is exceeded; the last run is still open.
    runs: list[list[int]] = [[stamps[0]]]
    for prev, t in zip(stamps, stamps[1:], strict=False):
        if t - prev > GAP:
            runs.append([])
        runs[-1].append(t)
    closed = runs[:-1]
    features = activity_features(state)
    assert features["session.count"] == len(closed)
    assert features["session.length_ms.avg"] == sum(r[-1] - r[0] for r in closed) / len(closed)
    assert features["session.events.avg"] == sum(len(r) for r in closed) / len(closed)
    assert features["session.dwell_ms.total"] == 10 * sum(len(r) for r in closed)
    assert features["session.current.events"] == len(runs[-1])
    assert features["temporal.since_last_session_ms"] == stamps[-1] - closed[-1][-1]
    assert features["temporal.hour_of_day"] == (stamps[-1] // 3_600_000) % 24
    assert features["context.surface.home.total"] == 300
    assert features["context.device.d0.total"] == 150 and features["context.device.d1.total"] == 150
