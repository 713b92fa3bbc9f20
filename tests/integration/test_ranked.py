"""`mode=ranked` end to end: events through Kafka, features into Redis, a ranked page through HTTP
with scores and reasons, the bandit credited when the viewer engages with what it served, and the
calibration and the viewer-feedback learner fitted on served items' outcomes."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from streams.mixer.adaptation import bucket_of
from streams.mixer.calibration import SegmentedCalibrator, ServedPrediction, learn_outcome
from streams.mixer.features import KINDS
from streams.mixer.viewer_feedback import Evidence, feedback_lift, served_evidence
from tests.harness import Cluster
from tests.integration.test_timelines import activity, get_timeline, graph, now_ms, seq, tweet


def engagement(user: int, tweet_id: int, author: int, kind: str) -> tuple[str, str, dict[str, Any]]:
    event = {
        "event_id": f"e{next(seq)}",
        "ts": now_ms(),
        "type": kind,
        "user_id": user,
        "tweet_id": tweet_id,
        "author_id": author,
    }
    return "engagement_events", str(user), event


def signal(tweet_id: int) -> tuple[str, str, dict[str, Any]]:
    event = {
        "event_id": f"s{next(seq)}",
        "ts": now_ms(),
        "type": "breaking_news",
        "topic": "storm",
        "weight": 5.0,
        "tweet_ids": [tweet_id],
    }
    return "real_time_signals", "storm", event


def test_ranked_page_scores_explains_and_learns(empty_broker: str, cluster: Cluster) -> None:
    worker = cluster.start_worker()
    viewer, friend, other, stranger = 1, 2, 3, 9
    cluster.produce([activity(viewer), graph("follow", viewer, friend), graph("follow", viewer, other)])
    assert get_timeline(worker, viewer)[0] == 200  # materialise the home timeline
    popular, plain, theirs, trending = tweet(friend), tweet(friend), tweet(other), tweet(stranger)
    cluster.produce([popular, plain, theirs, trending])
    ids = {
        name: t[2]["tweet_id"]
        for name, t in {"popular": popular, "plain": plain, "theirs": theirs, "trending": trending}.items()
    }
    fans = range(100, 140)
    cluster.produce(
        [
            engagement(f, ids["popular"], friend, kind)
            for f in fans
            for kind in ("impression", "like", "reply")
        ]
        + [engagement(f, ids["plain"], friend, "impression") for f in fans]
        + [signal(ids["trending"])]
    )

    deadline = time.monotonic() + 30
    while True:
        status, body = get_timeline(worker, viewer, mode="ranked", limit=10)
        assert status == 200, body
        got = {item["tweet_id"]: item for item in body["items"]}
        if set(ids.values()) <= set(got) and got[ids["popular"]]["score"] > got[ids["plain"]]["score"]:
            break
        assert time.monotonic() < deadline, f"ranked page never settled: {body}"
        time.sleep(0.3)
    assert body["bucket"] in ("control", "adaptive") and body["strategy"]
    order = [item["tweet_id"] for item in body["items"]]
    assert order.index(ids["popular"]) < order.index(ids["plain"]), "likes and replies rank a tweet up"
    assert got[ids["trending"]]["source"] == "trending" and "trending" in got[ids["trending"]]["reason"]
    assert got[ids["popular"]]["source"] == "push" and got[ids["popular"]]["reason"]
    assert all(isinstance(item["score"], float) for item in body["items"])

    served_before = worker.metric("homemixer_ab_served", bucket=body["bucket"])
    assert served_before >= len(body["items"])
    cluster.produce([engagement(viewer, ids["popular"], friend, "like")])
    deadline = time.monotonic() + 30
    while worker.metric("homemixer_ab_engaged", bucket=body["bucket"]) < 1:
        assert time.monotonic() < deadline, "the like on a served tweet was never credited"
        time.sleep(0.3)

    # Saying `not_interested` in an author takes their tweets off the viewer's ranked pages.
    cluster.produce([engagement(viewer, ids["theirs"], other, "not_interested")])
    deadline = time.monotonic() + 30
    while True:
        body = get_timeline(worker, viewer, mode="ranked", limit=10)[1]
        if str(ids["theirs"]) in body["removed"]:
            break
        assert time.monotonic() < deadline, f"the not_interested never filtered the author: {body}"
        time.sleep(0.3)
    assert body["removed"][str(ids["theirs"])]["by"] == "NotInterestedAuthor"
    assert ids["theirs"] not in {item["tweet_id"] for item in body["items"]}


def test_served_outcomes_calibrate_the_next_ranked_page(empty_broker: str, cluster: Cluster) -> None:
    worker = cluster.start_worker(HOMEMIXER_CALIBRATION_LABEL_S="8")
    reader, friend, bystander, quiet = 2, 5, 3, 4
    assert (bucket_of(reader), bucket_of(bystander)) == ("adaptive", "control")
    cluster.produce(
        [
            activity(reader),
            activity(bystander),
            graph("follow", reader, friend),
            graph("follow", bystander, quiet),
        ]
    )
    assert get_timeline(worker, reader)[0] == get_timeline(worker, bystander)[0] == 200
    posts = [tweet(friend) for _ in range(6)]
    untouched = tweet(quiet)  # nobody engages with it: its raw predictions are the priors
    cluster.produce([*posts, untouched])
    ids = sorted(p[2]["tweet_id"] for p in posts)

    def ranked(user: int) -> dict[int, dict[str, Any]]:
        status, body = get_timeline(worker, user, mode="ranked", limit=10)
        assert status == 200, body
        return {item["tweet_id"]: item for item in body["items"]}

    deadline = time.monotonic() + 30
    while set(ids) - set(page := ranked(reader)) or untouched[2]["tweet_id"] not in ranked(bystander):
        assert time.monotonic() < deadline, "the tweets never reached the ranked pages"
        time.sleep(0.3)
    before = ranked(bystander)[untouched[2]["tweet_id"]]["predictions"]
    # Nothing has been learnt yet (served items without outcomes teach nothing), so what the page
    # shows is what the reader's items were served with: their raw predictions.
    liked = set(ids[:3])
    cluster.produce(
        [engagement(reader, t, friend, "impression") for t in ids]
        + [engagement(reader, t, friend, "like") for t in sorted(liked)]
    )
    labels = {"segment": "in_network", "kind": "like"}
    deadline = time.monotonic() + 30
    while worker.metric("homemixer_calibration_learnt", **labels) < len(ids):
        assert time.monotonic() < deadline, "the served outcomes were never learnt"
        time.sleep(0.3)
    assert worker.metric("homemixer_calibration_learnt", **labels) == len(ids)

    # The fitter takes items in queue order: served at the same ms, by "user:tweet".
    reference = SegmentedCalibrator()
    for t in ids:
        served = ServedPrediction(True, tuple(page[t]["predictions"][k] for k in KINDS))
        learn_outcome(reference, served, {"impression"} | ({"like"} if t in liked else set()))
    fit = reference.params()["in_network"]
    for kind in KINDS:
        kind_labels = {"segment": "in_network", "kind": kind}
        slope = worker.metric("homemixer_calibration_slope", **kind_labels)
        intercept = worker.metric("homemixer_calibration_intercept", **kind_labels)
        assert slope == pytest.approx(fit[kind].a, rel=1e-5)
        assert intercept == pytest.approx(fit[kind].b, rel=1e-5)

    # The reader is in the learning bucket: the same outcomes taught the viewer-feedback learner,
    # and the reader's next page weighs the friend's tweets by it; the bystander's never does.
    seen = Evidence()
    for t in ids:  # the first page's predictions were the raw ones, and the fitter's fit was identity
        raw = [page[t]["predictions"][k] for k in KINDS]
        seen += served_evidence(raw, {"like"} if t in liked else set())
    lift = feedback_lift(seen, seen)  # the friend is every author the reader has seen
    next_page = ranked(reader)
    reasons = [next_page[t]["reason"] for t in ids]
    shown = [float(re.findall(r"your engagement with this author x([0-9.]+)", r)[0]) for r in reasons]
    assert shown == pytest.approx([lift] * len(ids), abs=0.006)
    assert "your engagement" not in ranked(bystander)[untouched[2]["tweet_id"]]["reason"]

    # Half of what was seen was liked, far above the ~3% predicted: the fit raises every like
    # prediction, here on a tweet whose own features did not change.
    after = ranked(bystander)[untouched[2]["tweet_id"]]["predictions"]
    assert after["like"] == pytest.approx(fit["like"].apply(before["like"]), rel=1e-3)
    assert after["like"] > before["like"] * 1.005
    assert after["reply"] < before["reply"]


def test_a_ranked_read_scores_only_the_newest_500_followed_tweets(
    empty_broker: str, cluster: Cluster
) -> None:
    """The pushed timeline and the pulled celebrities share one budget of 500 candidates: a
    tweet older than the newest 500 of the two is not scored, however popular it is."""
    worker = cluster.start_worker(HOMEMIXER_CELEBRITY_THRESHOLD="3")
    viewer, author, celebrity = 1, 2, 3
    cluster.produce(
        [activity(viewer), graph("follow", viewer, author), graph("follow", viewer, celebrity)]
        + [graph("follow", fan, celebrity) for fan in (4, 5)]
    )
    assert get_timeline(worker, viewer)[0] == 200  # materialise the home timeline
    # 650 followed tweets, oldest first: the celebrity's reach the read (250 of a celebrity's
    # newest, half the budget), so the oldest 150 of the two are out of the budget.
    old = [tweet(author if i % 2 else celebrity) for i in range(150)]
    new = [tweet(author) for _ in range(325)] + [tweet(celebrity) for _ in range(175)]
    cluster.produce(old + new)
    popular_old = [old[0], old[1], old[-2], old[-1]]  # both authors' oldest and out-of-budget newest
    popular_new = new[0]
    fans = range(100, 130)
    cluster.produce(
        [
            engagement(f, t[2]["tweet_id"], t[2]["author_id"], kind)
            for t in [*popular_old, popular_new]
            for f in fans
            for kind in ("impression", "like", "reply")
        ]
    )
    target = popular_new[2]["tweet_id"]
    deadline = time.monotonic() + 60
    while True:
        status, body = get_timeline(worker, viewer, mode="ranked", limit=10, record=0)
        assert status == 200, body
        if body["items"] and body["items"][0]["tweet_id"] == target:
            break
        assert time.monotonic() < deadline, f"the popular new tweet never ranked first: {body['items'][:3]}"
        time.sleep(0.5)
    seen = {item["tweet_id"] for item in body["items"]} | {int(t) for t in body["removed"]}
    floor = new[0][2]["tweet_id"]
    assert min(seen) >= floor, "a tweet older than the newest 500 followed ones was a candidate"
