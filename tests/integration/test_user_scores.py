"""`user_scores` end to end: a viewer's like re-scores the liked tweet and its author's newest
tweets, with the values the scoring formula gives on the counts this test produced."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from streams.ingest.schemas import topic_schema
from streams.mixer.adaptation import bucket_of
from streams.mixer.engagement_model import TWITTER_WEIGHTS, ScoringModel, predict, score
from streams.mixer.features import CandidateFeatures, EntityCounts, tweet_age_ms
from tests.harness import Cluster
from tests.integration.test_ranked import engagement
from tests.integration.test_timelines import activity, get_timeline, graph, now_ms, tweet, wait_timeline


def at(event: tuple[str, str, dict[str, Any]], ts: int) -> tuple[str, str, dict[str, Any]]:
    topic, key, value = event
    return topic, key, {**value, "ts": ts}


def expected(tweet_id: int, ts: int, tweet_likes: int, tweet_views: int, author_likes: int) -> dict[str, Any]:
    """The score of a tweet by `author` for the viewer, who has seen one tweet and liked one of the
    author's, from counts as this test produced them (all at one event time: nothing decayed)."""
    features = CandidateFeatures(
        tweet_id=tweet_id,
        author_id=2,
        in_network=True,
        tweet=EntityCounts({"like": tweet_likes}, tweet_views),
        author=EntityCounts({"like": author_likes}, 20.0),
        user=EntityCounts({"like": 1.0}, 1.0),
        user_author=EntityCounts({"like": 1.0}),
        age_ms=tweet_age_ms(tweet_id, ts),
    )
    p = predict(features, ScoringModel())
    return {"score": score(p, TWITTER_WEIGHTS), "probabilities": p}


def test_a_viewers_like_rescores_the_authors_tweets(empty_broker: str, cluster: Cluster) -> None:
    worker = cluster.start_worker()
    viewer, author, other = 1, 2, 3
    cluster.produce([activity(viewer), graph("follow", viewer, author), graph("follow", viewer, other)])
    assert get_timeline(worker, viewer)[0] == 200
    liked, older, newest, elsewhere = tweet(author), tweet(author), tweet(author), tweet(other)
    cluster.produce([liked, older, newest, elsewhere])
    # A like scores only tweets the content store has: an engagement on a tweet not yet applied
    # (another topic, another node) re-scores nothing. Once the viewer's timeline holds all four,
    # the fanout has written them.
    wait_timeline(worker, viewer, lambda body: len(body["items"]) == 4)
    ids = [t[2]["tweet_id"] for t in (liked, older, newest)]
    ts = now_ms()
    fans = range(100, 120)
    cluster.produce(
        [at(engagement(f, ids[0], author, "impression"), ts) for f in fans]
        + [at(engagement(f, ids[0], author, "like"), ts) for f in fans[:10]]
    )
    # Wait until the author's counts (another partition than the viewer's) are in.
    cluster.read(
        "real_time_features",
        lambda values: any(
            v["entity_type"] == "author" and v["features"].get("like.total") == 10 for v in values
        ),
    )
    cluster.produce(
        [
            at(engagement(viewer, elsewhere[2]["tweet_id"], other, "impression"), ts),
            at(engagement(viewer, ids[0], author, "like"), ts),
        ]
    )
    # The fans' scores come from other partitions than the viewer's, and may come after it.
    every = cluster.read(
        "user_scores",
        lambda values: (
            sum(v["user_id"] == viewer for v in values) >= 3
            and {v["user_id"] for v in values} >= set(fans[:10])
        ),
    )
    for value in every:
        topic_schema("user_scores").validate(value, "user_scores")
    assert {v["user_id"] for v in every} == {viewer, *fans[:10]}, "every viewer who liked, no one else"
    scores = [v for v in every if v["user_id"] == viewer]
    assert sorted(v["tweet_id"] for v in scores) == sorted(ids), (
        "the liked tweet and its author's others only"
    )
    assert all(v["user_id"] == viewer and v["ts"] == ts for v in scores)
    assert all(v["author_id"] == author and v["bucket"] == bucket_of(viewer) for v in scores)

    # The viewer's like reaches the tweet's and the author's counts through other partitions than
    # the viewer's: the score may be taken before or after they count it.
    for value in scores:
        liked_tweet = value["tweet_id"] == ids[0]
        references = [
            expected(value["tweet_id"], ts, tweet_likes, 20 if liked_tweet else 0, author_likes)
            for tweet_likes, author_likes in itertools.product((10, 11) if liked_tweet else (0,), (10, 11))
        ]
        assert any(
            value["score"] == pytest.approx(r["score"], rel=1e-9)
            and value["probabilities"] == pytest.approx(r["probabilities"], rel=1e-9)
            for r in references
        ), (value, references)
    like = {v["tweet_id"]: v["probabilities"]["like"] for v in scores}
    assert like[ids[0]] > like[ids[1]], "a tweet half its viewers liked is more likely to be liked"
