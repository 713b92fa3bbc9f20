"""Decayed features on `real_time_features` against the contract's formula, computed here from the
produced events; and exactness when the worker is killed (-9) part-way, more than once."""

from __future__ import annotations

import math
import random
import shutil
import threading
import time
from collections import defaultdict
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.harness import Cluster

HALF_LIVES_MS = {"30m": 1_800_000, "24h": 86_400_000, "72h": 259_200_000, "14d": 1_209_600_000}
TYPES = ("impression", "like", "retweet", "reply", "click", "report")
T0 = 1_700_000_000_000


def engagement_stream(n: int, seed: int) -> list[dict[str, Any]]:
    """Engagements over a few users, tweets and authors; timestamps mostly rising, some late."""
    rng = random.Random(seed)
    events = []
    ts = T0
    for i in range(n):
        ts += rng.randint(0, 120_000)
        tweet = rng.randint(1, 40)
        events.append(
            {
                "event_id": f"e{seed}-{i}",
                "ts": ts - (rng.randint(0, 3_600_000) if rng.random() < 0.1 else 0),
                "type": rng.choice(TYPES),
                "user_id": rng.randint(1, 25),
                "tweet_id": 1000 + tweet,
                "author_id": 1 + tweet % 6,
            }
        )
    return events


def reference_features(events: list[dict[str, Any]]) -> dict[str, tuple[int, dict[str, float]]]:
    """key -> (ts, features): the contract's formula evaluated at each entity's latest event."""
    by_entity: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_entity[f"tweet:{e['tweet_id']}"].append(e)
        by_entity[f"author:{e['author_id']}"].append(e)
        by_entity[f"user:{e['user_id']}"].append(e)
        by_entity[f"user_author:{e['user_id']}:{e['author_id']}"].append(e)
    reference = {}
    for key, items in by_entity.items():
        at = max(e["ts"] for e in items)
        features: dict[str, float] = {}
        for kind in {e["type"] for e in items}:
            stamps = [e["ts"] for e in items if e["type"] == kind]
            features[f"{kind}.total"] = float(len(stamps))
            for name, hl in HALF_LIVES_MS.items():
                features[f"{kind}.decayed.{name}"] = math.fsum(
                    math.exp(-(at - t) * math.log(2) / hl) for t in stamps
                )
        if key.startswith("tweet:"):
            # The window calculator's family: engagements in the five one-minute hops up to the
            # tweet's latest one.
            end = at // 60_000 * 60_000 + 60_000
            features["velocity.5m"] = float(sum(1 for e in items if end - 300_000 <= e["ts"] < end))
        impressions = features.get("impression.decayed.24h", 0.0)
        if key.startswith(("tweet:", "author:")) and impressions > 0:
            for kind in {e["type"] for e in items} - {"impression"}:
                features[f"rate.{kind}.24h"] = features[f"{kind}.decayed.24h"] / impressions
        reference[key] = (at, features)
    return reference


def latest_vectors(values: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The latest engagement-family vector per entity (other families share the keys)."""
    latest: dict[str, dict[str, Any]] = {}
    for v in values:
        if any(name.split(".")[0] in TYPES for name in v["features"]):
            latest[f"{v['entity_type']}:{v['entity_id']}"] = v
    return latest


def assert_matches(latest: dict[str, dict[str, Any]], reference: dict[str, Any]) -> None:
    assert set(latest) == set(reference)
    for key, (at, features) in reference.items():
        got = latest[key]
        assert got["ts"] == at, key
        assert set(got["features"]) == set(features), key
        for name, value in features.items():
            assert got["features"][name] == pytest.approx(value, rel=1e-9), (key, name)


def produce_engagements(cluster: Cluster, events: list[dict[str, Any]]) -> None:
    cluster.produce(("engagement_events", str(e["user_id"]), e) for e in events)


def read_until_matches(cluster: Cluster, reference: dict[str, Any], timeout: float = 120) -> None:
    def done(values: list[dict[str, Any]]) -> bool:
        # Complete once every family is: the engagement counts (which may overshoot on a wrong
        # run, and are then asserted) and the window calculator's velocity, a family that arrives
        # through a path of its own and may land after the counts.
        latest = latest_vectors(values)
        return all(k in latest and latest[k]["ts"] == at for k, (at, _) in reference.items()) and all(
            latest[k]["features"].get(f"{t}.total", 0) >= reference[k][1].get(f"{t}.total", 0)
            and latest[k]["features"].get("velocity.5m") == reference[k][1].get("velocity.5m")
            for k in reference
            for t in TYPES
        )

    read: list[list[dict[str, Any]]] = []
    try:
        values = cluster.read(
            "real_time_features", lambda v: read.append(v) is None and done(v), timeout=timeout
        )
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; differences: {differences(latest_vectors(read[-1]), reference)}"
        ) from None
    assert_matches(latest_vectors(values), reference)


def differences(latest: dict[str, dict[str, Any]], reference: dict[str, Any], most: int = 8) -> list[str]:
    """What keeps a read from matching: the first few entities whose vector differs, and how."""
    found = []
    for key, (at, features) in reference.items():
        got = latest.get(key)
        if got is None:
            found.append(f"{key}: no vector")
            continue
        wrong = {n: (got["features"].get(n), v) for n, v in features.items() if got["features"].get(n) != v}
        if got["ts"] != at or any(n.endswith(".total") or n == "velocity.5m" for n in wrong):
            found.append(f"{key}: ts {got['ts']} (want {at}), (got, want) {dict(list(wrong.items())[:4])}")
    return found[:most]


def test_decayed_features_follow_the_contract_formula(empty_broker: str, cluster: Cluster) -> None:
    events = engagement_stream(600, seed=1)
    replays = events[:50]
    cluster.start_worker()
    produce_engagements(cluster, events + replays)
    read_until_matches(cluster, reference_features(events))


@pytest.mark.slow
def test_features_are_exact_after_repeated_kill_9(empty_broker: str, cluster: Cluster) -> None:
    events = engagement_stream(12_000, seed=2)
    worker = cluster.start_worker()
    produce_engagements(cluster, events[:6000])
    for round_ in range(2):
        deadline = time.monotonic() + 60
        while worker.metric("homemixer_messages_total", topic="engagement_events", outcome="applied") < 500:
            assert time.monotonic() < deadline, "the worker made no progress"
            time.sleep(0.05)
        worker.kill()
        if round_ == 0:
            produce_engagements(cluster, events[6000:] + events[:300])
        worker = cluster.start_worker(name="w1")
    read_until_matches(cluster, reference_features(events), timeout=180)


@pytest.mark.slow
def test_state_follows_the_partition_to_a_worker_with_an_empty_disk(
    empty_broker: str, cluster: Cluster
) -> None:
    events = engagement_stream(3000, seed=3)
    worker = cluster.start_worker("w1")
    produce_engagements(cluster, events[:1500])
    read_until_matches(cluster, reference_features(events[:1500]))
    worker.kill()
    shutil.rmtree(worker.data_dir)
    cluster.start_worker("w2")
    produce_engagements(cluster, events[1500:] + events[:100])
    read_until_matches(cluster, reference_features(events), timeout=120)


@pytest.mark.slow
def test_totals_stay_exact_while_workers_die_join_and_return_under_load(
    empty_broker: str, cluster: Cluster
) -> None:
    events = engagement_stream(6000, seed=7)
    chunks = [events[i : i + 200] for i in range(0, len(events), 200)]
    first = cluster.start_worker("w1")
    cluster.start_worker("w2")

    def stream() -> None:  # 400 events/s for 15 s while the group changes under it
        for chunk in chunks:
            produce_engagements(cluster, chunk)
            time.sleep(0.5)

    streaming = threading.Thread(target=stream)
    streaming.start()
    time.sleep(3)
    first.kill()  # mid-stream, its partitions move to w2
    time.sleep(3)
    cluster.start_worker("w3")  # a third joins
    time.sleep(3)
    cluster.start_worker("w1")  # the first returns, with the disk it had
    streaming.join()
    read_until_matches(cluster, reference_features(events), timeout=150)


@pytest.mark.slow
def test_a_worker_with_an_empty_disk_loads_the_latest_snapshots_and_the_records_after_them(
    empty_broker: str, cluster: Cluster, broker_under_test: str
) -> None:
    events = engagement_stream(3000, seed=5)
    tiny_snapshots = {"HOMEMIXER_SNAPSHOT_MIN_BYTES": "4096"}  # a snapshot every few commits
    worker = cluster.start_worker("w1", **tiny_snapshots)
    produce_engagements(cluster, events[:1500])
    read_until_matches(cluster, reference_features(events[:1500]))
    assert worker.metric("homemixer_snapshots_total", node="aggregator") > 0
    worker.kill()
    shutil.rmtree(worker.data_dir)
    successor = cluster.start_worker("w2", **tiny_snapshots)
    produce_engagements(cluster, events[1500:] + events[:100])
    read_until_matches(cluster, reference_features(events), timeout=120)
    assert successor.metric("homemixer_snapshot_loads_total", node="aggregator") > 0
    if broker_under_test == "kafka":  # Tansu implements no DeleteRecords: there nothing is trimmed
        consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "probe"})
        topic = f"{cluster.app_id}-aggregator-engagements-by-tweet-changelog"
        heads = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0] for p in range(4)]
        consumer.close()
        assert all(head > 0 for head in heads), heads


@pytest.mark.slow
@pytest.mark.broker_feature("delete_records")
def test_a_worker_whose_store_needs_deleted_records_stops_and_says_why(
    empty_broker: str, cluster: Cluster
) -> None:
    events = engagement_stream(600, seed=6)
    worker = cluster.start_worker("w1")  # no snapshot: the default threshold is far above this
    produce_engagements(cluster, events)
    read_until_matches(cluster, reference_features(events))
    worker.kill()
    shutil.rmtree(worker.data_dir)
    topic = f"{cluster.app_id}-aggregator-engagements-by-tweet-changelog"
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "probe"})
    ends = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(4)]
    consumer.close()
    gone = [TopicPartition(topic, p, end) for p, end in enumerate(ends) if end > 0]
    assert gone
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    for future in admin.delete_records(gone, request_timeout=10).values():
        future.result(timeout=15)  # as a broker's retention would

    successor = cluster.start_worker("w2", wait=False)
    assert successor.proc.wait(timeout=120) != 0
    log = successor.log.read_text(errors="replace")
    assert "the worker stops" in log and "but the changelog starts at" in log, log[-3000:]


def test_sessions_and_context_reach_real_time_features(empty_broker: str, cluster: Cluster) -> None:
    cluster.start_worker()
    gap = 1_800_000
    stamps = [T0, T0 + 60_000, T0 + 120_000, T0 + 120_000 + gap + 1, T0 + 130_000 + gap]
    events = [
        {"event_id": f"s{i}", "ts": ts, "type": "scroll", "user_id": 77, "surface": "home", "device": "ios"}
        for i, ts in enumerate(stamps)
    ]
    cluster.produce(("user_activity_events", "77", e) for e in events)

    def session_vector(values: list[dict[str, Any]]) -> dict[str, float]:
        found = [v for v in values if v["entity_id"] == "77" and "session.count" in v["features"]]
        return found[-1]["features"] if found and found[-1]["ts"] == stamps[-1] else {}

    features = session_vector(cluster.read("real_time_features", lambda v: bool(session_vector(v))))
    assert features["session.count"] == 1
    assert features["session.length_ms.avg"] == 120_000
    assert features["session.events.avg"] == 3
    assert features["session.current.events"] == 2
    assert features["temporal.since_last_session_ms"] == stamps[-1] - stamps[2]
    assert features["context.surface.home.total"] == 5 and features["context.device.ios.total"] == 5


def test_signals_boost_the_tweets_they_name(empty_broker: str, cluster: Cluster) -> None:
    cluster.start_worker()
    signals = [
        {
            "event_id": "sig1",
            "ts": T0,
            "type": "trending_topic",
            "topic": "cup",
            "weight": 2.0,
            "tweet_ids": [5, 6],
        },
        {
            "event_id": "sig2",
            "ts": T0 + 3_600_000,
            "type": "sports",
            "topic": "cup",
            "weight": 1.0,
            "tweet_ids": [5],
        },
    ]
    cluster.produce(("real_time_signals", "cup", s) for s in signals)

    def boosts(values: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
        return {v["entity_id"]: v["features"] for v in values if "signal.count.total" in v["features"]}

    found = boosts(
        cluster.read(
            "real_time_features",
            lambda v: boosts(v).get("5", {}).get("signal.count.total") == 2 and "6" in boosts(v),
        )
    )
    assert found["6"]["signal.count.total"] == 1 and found["6"]["signal.boost.decayed.24h"] == 2.0
    expected = 2.0 * math.exp(-3_600_000 * math.log(2) / 1_800_000) + 1.0
    assert found["5"]["signal.boost.decayed.30m"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.slow
def test_failover_to_a_worker_with_warm_standbys(empty_broker: str, cluster: Cluster) -> None:
    events = engagement_stream(2000, seed=5)
    workers = [cluster.start_worker(name, HOMEMIXER_STANDBY_REPLICAS="1") for name in ("w1", "w2")]
    produce_engagements(cluster, events[:1000])
    read_until_matches(cluster, reference_features(events[:1000]))
    deadline = time.monotonic() + 30
    while not all(w.metric("homemixer_standby_partitions", node="aggregator") > 0 for w in workers):
        assert time.monotonic() < deadline, "standbys were never warmed"
        time.sleep(0.5)
    workers[0].kill()
    produce_engagements(cluster, events[1000:] + events[:50])
    read_until_matches(cluster, reference_features(events), timeout=120)


def test_each_entitys_newest_vector_holds_every_family_after_a_burst(
    empty_broker: str, cluster: Cluster
) -> None:
    """The feature updater merges the families of five nodes, and coalesces a burst of updates."""
    cluster.start_worker()
    viewer, author, tweet = 77, 78, 5
    follow = {"event_id": "f1", "ts": T0, "type": "follow", "src_user_id": viewer, "dst_user_id": author}
    scrolls = [
        {"event_id": f"a{i}", "ts": T0 + 1000 * i, "type": "scroll", "user_id": viewer, "surface": "home"}
        for i in (1, 2, 3)
    ]
    likes = [
        {"event_id": f"l{i}", "ts": T0 + 4000 + i, "type": "like", "user_id": viewer if i == 0 else 1000 + i}
        | {"tweet_id": tweet, "author_id": author}
        for i in range(300)
    ]
    signal_ts = T0 + 600_000
    signal = {
        "event_id": "s1",
        "ts": signal_ts,
        "type": "sports",
        "topic": "cup",
        "weight": 2.0,
        "tweet_ids": [tweet],
    }
    cluster.produce(
        [("social_graph_events", str(viewer), follow)]
        + [("user_activity_events", str(viewer), e) for e in scrolls]
        + [("engagement_events", str(e["user_id"]), e) for e in likes]
        + [("real_time_signals", "cup", signal)]
    )

    def newest(values: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {f"{v['entity_type']}:{v['entity_id']}": v for v in values}

    def complete(values: list[dict[str, Any]]) -> bool:
        latest = newest(values)
        user, tweet_vector = latest.get(f"user:{viewer}"), latest.get(f"tweet:{tweet}")
        return (
            user is not None
            and {"like.total", "social.following", "session.current.events"} <= user["features"].keys()
            and tweet_vector is not None
            and tweet_vector["features"].get("like.total") == len(likes)
            and "signal.count.total" in tweet_vector["features"]
        )

    values = cluster.read("real_time_features", complete)
    latest = newest(values)
    user = latest[f"user:{viewer}"]
    assert user["ts"] == likes[0]["ts"]
    assert user["features"]["like.total"] == 1 and user["features"]["like.decayed.30m"] == 1.0
    assert user["features"]["social.following"] == 1 and user["features"]["social.followers"] == 0
    assert user["features"]["session.current.events"] == 3
    assert user["features"]["context.surface.home.total"] == 3

    tweet_vector = latest[f"tweet:{tweet}"]
    assert tweet_vector["ts"] == signal_ts
    features = tweet_vector["features"]
    assert features["velocity.5m"] == len(likes)
    assert features["signal.count.total"] == 1 and features["signal.boost.decayed.24h"] == pytest.approx(2.0)
    # The engagement family is older than the signal: its decayed counts are evaluated at the
    # vector's ts, as the contract's formula says.
    for name, half_life in HALF_LIVES_MS.items():
        expected = math.fsum(math.exp(-(signal_ts - e["ts"]) * math.log(2) / half_life) for e in likes)
        assert features[f"like.decayed.{name}"] == pytest.approx(expected, rel=1e-9), name
    tweet_messages = sum(1 for v in values if v["entity_type"] == "tweet" and v["entity_id"] == str(tweet))
    assert tweet_messages < len(likes), "a burst of updates of one tweet is coalesced"
