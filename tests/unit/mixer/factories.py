"""Factories for the mixer's tests: features, candidates and queries with only what a test sets."""

from __future__ import annotations

from streams.mixer.components import Candidate, Query, Source
from streams.mixer.features import CandidateFeatures

NOW_MS = 1_700_000_000_000


def features(
    tweet_id: int,
    author_id: int = 1,
    *,
    in_network: bool = True,
    retweet_of: int | None = None,
    deleted: bool = False,
    signal_boost: float = 0.0,
    served_before: bool = False,
) -> CandidateFeatures:
    return CandidateFeatures(
        tweet_id=tweet_id,
        author_id=author_id,
        in_network=in_network,
        retweet_of=retweet_of,
        deleted=deleted,
        signal_boost=signal_boost,
        served_before=served_before,
    )


def candidate(
    tweet_id: int,
    author_id: int = 1,
    *,
    score: float = 0.0,
    in_network: bool = True,
    retweet_of: int | None = None,
    deleted: bool = False,
    signal_boost: float = 0.0,
    served_before: bool = False,
    source: Source = "push",
) -> Candidate:
    f = features(
        tweet_id,
        author_id,
        in_network=in_network,
        retweet_of=retweet_of,
        deleted=deleted,
        signal_boost=signal_boost,
        served_before=served_before,
    )
    return Candidate(tweet_id, author_id, source, f, score=score)


def query(user_id: int = 42, limit: int = 10, max_id: int | None = None) -> Query:
    return Query(user_id=user_id, limit=limit, max_id=max_id, now_ms=NOW_MS)


def ids(candidates: list[Candidate]) -> list[int]:
    return [c.tweet_id for c in candidates]
