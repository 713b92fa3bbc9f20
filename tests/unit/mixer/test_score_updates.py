from __future__ import annotations

from typing import Any

from streams.ingest.schemas import topic_schema
from streams.mixer.score_updates import UserScore, ViewerChange, candidates_to_rescore, viewer_changes


def event(user: int, tweet: int, author: int, kind: str, ts: int) -> dict[str, Any]:
    return {"user_id": user, "tweet_id": tweet, "author_id": author, "type": kind, "ts": ts}


def test_viewer_changes_keep_what_each_viewer_chose_to_do() -> None:
    changes = viewer_changes(
        [
            event(1, 10, 5, "like", 100),
            event(1, 11, 6, "impression", 300),
            event(1, 12, 5, "reply", 200),
            event(2, 10, 5, "dwell", 400),
            event(3, 13, 7, "not_interested", 50),
        ]
    )
    assert set(changes) == {1, 3}, "impressions and dwell alone change no score message"
    assert changes[1].ts == 200 and changes[1].authors == {5} and changes[1].tweets == {10: 5, 12: 5}
    assert changes[3].tweets == {13: 7}


def test_candidates_are_the_acted_on_tweets_then_each_authors_newest_once() -> None:
    change = ViewerChange(ts=1, authors={6, 5}, tweets={10: 5, 30: 6})
    newest = {5: [12, 10, 9], 6: [31, 30], 7: [70]}
    assert candidates_to_rescore(change, newest) == [10, 30, 12, 9, 31]
    assert candidates_to_rescore(ViewerChange(ts=1, authors={8}, tweets={80: 8}), newest) == [80]


def test_a_user_score_message_follows_its_schema() -> None:
    value = UserScore(1, 2, 3, 4, 0.5, {"like": 0.1}, "control").to_json()
    topic_schema("user_scores").validate(value, "user_scores")
    assert value == {
        "user_id": 1,
        "ts": 2,
        "tweet_id": 3,
        "tweet_id_str": "3",
        "author_id": 4,
        "score": 0.5,
        "probabilities": {"like": 0.1},
        "bucket": "control",
    }
