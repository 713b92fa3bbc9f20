"""The ranked pipeline's hydrator: the viewer's context, and every candidate's features in one
script call (`hydrate.lua`).

One call because a pipeline of HGETALLs spent most of a ranked request packing 1,500 commands: the
ids travel as one space-separated argument, and the rare signals, retweets and served tweets come
back as positions. The feature strings come back as the MGET gave them: joining them in the script
took Redis ~0.25 ms per read (Lua's table.concat of ~40 KB, a check per string), and the worker
joins them in ~30 us (`stored_counts_many`). In a learning bucket the call also reads the viewer's
feedback on the authors (`streams.ranked.feedback_store`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

from redis.asyncio import Redis

from streams.mixer.components import Query, SourceItem, ViewerContext
from streams.mixer.features import (
    CandidateFeatures,
    HomeFeatures,
    decayed_boosts,
    stored_counts_many,
    tweet_age_ms,
)
from streams.mixer.viewer_feedback import VIEWER
from streams.ranked.cluster_hydrate import hydrate_in_round_trips
from streams.ranked.feedback_store import decode_lifts
from streams.serving.connection import is_cluster
from streams.serving.keys import TWEET_PREFIX, features_key, feedback_key, served_key
from streams.serving.scripts import Script, execute
from streams.serving.view import UserContext

HYDRATE = Script("streams.ranked", "hydrate.lua")


def _pairs(flat: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
    """(position, value) pairs of a script's flat {position, value, ...} list."""
    return zip(flat[::2], flat[1::2], strict=True)


async def hydrate_replies(redis: Redis, calls: Sequence[tuple[list[str], list[str]]]) -> list[Any]:
    """`hydrate.lua`'s replies to many (KEYS, ARGV) calls: one pipeline on one Redis (the score
    calculator hydrates every viewer of a batch in one round trip); on a cluster, side by side in
    Python (`cluster_hydrate`). `RedisHydrator.decode` reads each."""
    if is_cluster(redis):
        return list(await asyncio.gather(*(hydrate_in_round_trips(redis, k, a) for k, a in calls)))
    pipe = redis.pipeline(transaction=False)
    for keys, args in calls:
        HYDRATE.queue(pipe, keys, args)
    return await execute(pipe)


class RedisHydrator:
    """`feedback`: the request's bucket learns, so candidates carry the viewer's feedback lifts;
    `frozen`: learning is frozen, the lifts are read as learnt, not faded."""

    def __init__(
        self, redis: Redis, context: UserContext, feedback: bool = False, frozen: bool = False
    ) -> None:
        self._redis = redis
        self._context = context
        self._feedback = feedback
        self._frozen = frozen

    async def hydrate_viewer(self, query: Query) -> ViewerContext:
        # UserContext.hidden already joins blocks both ways and mutes; the filter reports one reason.
        return ViewerContext(
            following=frozenset(self._context.following),
            blocked=frozenset(self._context.hidden),
            not_interested=frozenset(self._context.not_interested),
        )

    async def hydrate(
        self, query: Query, viewer: ViewerContext, items: Sequence[SourceItem]
    ) -> Sequence[CandidateFeatures]:
        if not items:
            return []
        (reply,) = await hydrate_replies(self._redis, [self.script_call(query, items)])
        return self.decode(reply, query, viewer, items)

    def script_call(self, query: Query, items: Sequence[SourceItem]) -> tuple[list[str], list[str]]:
        user_id = query.user_id
        keys = [features_key(HomeFeatures.USER, str(user_id)), served_key(user_id)]
        if self._feedback:
            keys.append(feedback_key(user_id))
        args = [
            TWEET_PREFIX,
            features_key(HomeFeatures.TWEET, ""),
            features_key(HomeFeatures.SIGNAL, ""),
            features_key(HomeFeatures.AUTHOR, ""),
            features_key(HomeFeatures.USER_AUTHOR, HomeFeatures.user_author_prefix(user_id)),
            VIEWER,
            " ".join([str(item.tweet_id) for item in items]),
        ]
        return keys, args

    def decode(
        self, reply: list[Any], query: Query, viewer: ViewerContext, items: Sequence[SourceItem]
    ) -> list[CandidateFeatures]:
        user_id, now = query.user_id, query.now_ms
        author_ids, author_of, retweet_pairs, features, signal_pairs, served, feedback = reply
        counts = stored_counts_many(features, now)
        n = len(author_ids)
        user = counts[0]
        authors = [int(a) for a in author_ids]
        lifts = decode_lifts(feedback, authors, None if self._frozen else now)
        # What every candidate of an author shares, by the author id as the script returns it.
        by_author = {
            raw: (
                author,
                author in viewer.following or author == user_id,  # in_network
                counts[1 + k],
                counts[1 + n + k],
                lifts.get(author, 1.0),
            )
            for k, (raw, author) in enumerate(zip(author_ids, authors, strict=True))
        }
        retweet_of = {i: int(t) for i, t in _pairs(retweet_pairs)}
        boosts = dict(zip(signal_pairs[::2], decayed_boosts(signal_pairs[1::2], now), strict=True))
        served_before = set(served)
        hydrated = []
        # Positional: ~500 per request, and keywords make each ~3x as costly to build.
        for i, (item, raw_author, tweet_counts) in enumerate(
            zip(items, author_of, counts[1 + 2 * n :], strict=True)
        ):
            if raw_author is None:
                hydrated.append(CandidateFeatures.deleted_tweet(item.tweet_id, item.author_id or 0))
                continue
            author, in_network, author_counts, affinity, lift = by_author[raw_author]
            hydrated.append(
                CandidateFeatures(
                    item.tweet_id,
                    author,
                    in_network,
                    retweet_of.get(i),  # retweet_of
                    tweet_counts,  # tweet
                    author_counts,  # author
                    user,
                    affinity,  # user_author
                    tweet_age_ms(item.tweet_id, now),  # age_ms
                    boosts.get(i, 0.0),  # signal_boost
                    False,  # deleted
                    i in served_before,  # served_before
                    lift,  # feedback_lift
                )
            )
        return hydrated
