"""The ranked hydrator against a real Redis: every candidate's features as the script reads and
joins them equal what decoding each stored string on its own gives, whatever the strings' age
(packed, or text from an earlier version), and whatever is missing."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from streams.mixer.components import Query, SourceItem, ViewerContext
from streams.mixer.features import (
    SIGNAL_FIELDS,
    STORED_FIELDS,
    CandidateFeatures,
    EntityCounts,
    HomeFeatures,
    decayed_boosts,
    pack_stored,
    stored_counts_many,
    tweet_age_ms,
)
from streams.mixer.viewer_feedback import Evidence, fade_factor, feedback_lift
from streams.ranked.feedback_store import queue_learning
from streams.ranked.hydrator import RedisHydrator
from streams.serving.keys import features_key, served_key, tweet_key
from streams.serving.scripts import execute
from streams.serving.view import UserContext
from streams.snowflake import snowflake_at
from tests.harness import with_redis

NOW_MS = 1_790_000_000_000
HOUR_MS = 3_600_000
VIEWER, FOLLOWED, OTHER = 1, 7, 8
# Snowflake ids an hour apart: t1 by FOLLOWED; t2 by OTHER, a retweet of t1; t3 deleted; t4 by
# FOLLOWED, with text features; t5 by OTHER, served before and with a signal.
T1, T2, T3, T4, T5 = (snowflake_at(NOW_MS - h * HOUR_MS) for h in (5, 4, 3, 2, 1))


def packed(**values: float) -> bytes:
    return pack_stored({**values, "ts": float(NOW_MS - HOUR_MS)}, STORED_FIELDS)


def text(**values: float) -> bytes:
    """A string as versions before the packed format wrote it: absent fields empty."""
    full = {**values, "ts": float(NOW_MS - HOUR_MS)}
    return ",".join(repr(full[f]) if f in full else "" for f in STORED_FIELDS).encode()


STORED: dict[str, bytes] = {
    features_key(HomeFeatures.USER, str(VIEWER)): packed(like=3.0, impression=40.0),
    features_key(HomeFeatures.AUTHOR, str(FOLLOWED)): packed(like=20.0, reply=4.0, impression=300.0),
    features_key(HomeFeatures.AUTHOR, str(OTHER)): text(like=2.0, impression=90.0),
    features_key(HomeFeatures.USER_AUTHOR, f"{VIEWER}:{FOLLOWED}"): packed(like=2.0, impression=6.0),
    features_key(HomeFeatures.TWEET, str(T1)): packed(like=5.0, click=2.0, impression=50.0),
    features_key(HomeFeatures.TWEET, str(T4)): text(report=1.0, impression=10.0),
    features_key(HomeFeatures.TWEET, str(T5)): packed(retweet=1.0, impression=12.0),
}
SIGNAL = pack_stored({"boost": 4.0, "ts": float(NOW_MS - HOUR_MS)}, SIGNAL_FIELDS)


def decoded(key: str) -> EntityCounts:
    """One stored string decoded alone, as the list decoder does it (NO counts when missing)."""
    return stored_counts_many([STORED.get(key)], NOW_MS)[0]


def expected(tweet: int, author: int, retweet_of: int | None = None) -> CandidateFeatures:
    return CandidateFeatures(
        tweet_id=tweet,
        author_id=author,
        in_network=author == FOLLOWED,
        retweet_of=retweet_of,
        tweet=decoded(features_key(HomeFeatures.TWEET, str(tweet))),
        author=decoded(features_key(HomeFeatures.AUTHOR, str(author))),
        user=decoded(features_key(HomeFeatures.USER, str(VIEWER))),
        user_author=decoded(features_key(HomeFeatures.USER_AUTHOR, f"{VIEWER}:{author}")),
        age_ms=tweet_age_ms(tweet, NOW_MS),
        signal_boost=decayed_boosts([SIGNAL], NOW_MS)[0] if tweet == T5 else 0.0,
        served_before=tweet == T5,
    )


async def store(redis: Redis) -> None:
    for tweet, author in ((T1, FOLLOWED), (T2, OTHER), (T4, FOLLOWED), (T5, OTHER)):
        await redis.hset(tweet_key(tweet), mapping={"author_id": author, "text": "x"})
    await redis.hset(tweet_key(T2), "retweet_of", T1)
    await redis.mset(STORED)
    await redis.set(features_key(HomeFeatures.SIGNAL, str(T5)), SIGNAL)
    await redis.zadd(served_key(VIEWER), {str(T5): NOW_MS - HOUR_MS})


def hydrator(redis: Redis) -> RedisHydrator:
    return RedisHydrator(redis, UserContext({FOLLOWED}, set(), set(), None, set()))


QUERY = Query(VIEWER, 50, None, NOW_MS)
VIEWER_CONTEXT = ViewerContext(following=frozenset({FOLLOWED}))


def test_the_script_reads_each_candidate_as_its_strings_decode_alone(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        await store(redis)
        items = [SourceItem(t) for t in (T5, T4, T3, T2, T1)]
        hydrated = await hydrator(redis).hydrate(QUERY, VIEWER_CONTEXT, items)
        assert list(hydrated) == [
            expected(T5, OTHER),
            expected(T4, FOLLOWED),
            CandidateFeatures.deleted_tweet(T3),
            expected(T2, OTHER, retweet_of=T1),
            expected(T1, FOLLOWED),
        ]
        # Not vacuous: the strings differ, and both kinds of string were read.
        assert hydrated[0].tweet != hydrated[1].tweet != hydrated[4].tweet
        assert hydrated[1].tweet.count("report") > 0 and hydrated[0].author.count("like") > 0
        assert hydrated[3].tweet == EntityCounts() and hydrated[3].user_author == EntityCounts()

    with_redis(redis_url, body)


def test_a_broken_string_fails_the_read_with_its_bytes(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        await store(redis)
        broken = packed(like=1.0)[:-8]
        await redis.set(features_key(HomeFeatures.TWEET, str(T1)), broken)
        with pytest.raises(ValueError, match="do not have the 9 fields"):
            await hydrator(redis).hydrate(QUERY, VIEWER_CONTEXT, [SourceItem(T1), SourceItem(T4)])

    with_redis(redis_url, body)


def test_a_learning_viewers_candidates_carry_the_feedback_lift_of_their_author(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        await store(redis)
        pipe = redis.pipeline(transaction=True)
        queue_learning(pipe, VIEWER, NOW_MS - HOUR_MS, {FOLLOWED: Evidence(3.0, 1.0)})
        await execute(pipe)
        items = [SourceItem(t) for t in (T5, T4, T1)]
        learning = RedisHydrator(redis, UserContext({FOLLOWED}, set(), set(), None, set()), feedback=True)
        hydrated = await learning.hydrate(QUERY, VIEWER_CONTEXT, items)
        viewer = Evidence(3.0, 1.0).faded(fade_factor(HOUR_MS))
        lift = feedback_lift(viewer, viewer)  # the viewer's only author so far
        assert [f.feedback_lift for f in hydrated] == pytest.approx([1.0, lift, lift])
        assert lift != 1.0
        assert list(hydrated) == [
            expected(T5, OTHER),
            expected(T4, FOLLOWED)._replace(feedback_lift=hydrated[1].feedback_lift),
            expected(T1, FOLLOWED)._replace(feedback_lift=hydrated[2].feedback_lift),
        ]
        # outside a learning bucket the same state is not read
        plain = await hydrator(redis).hydrate(QUERY, VIEWER_CONTEXT, items)
        assert [f.feedback_lift for f in plain] == [1.0, 1.0, 1.0]

    with_redis(redis_url, body)
