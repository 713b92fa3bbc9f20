"""The ranked pipeline's hydrator: the viewer's context, and every candidate's features in one
script call (`HYDRATE`)."""

from __future__ import annotations

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
from streams.ranked.feedback_store import decode_lifts
from streams.serving.keys import TWEET_PREFIX, features_key, feedback_key, served_key
from streams.serving.view import UserContext

# Every candidate's author and retweet_of, the viewer's, the authors', the viewer x author and the
# tweets' feature strings, the tweets' signals and whether each was served to the viewer, in one
# script call. The ids travel as one space-separated argument, and the rare signals, retweets and
# served tweets come back as positions. A pipeline of HGETALLs spent most of a ranked request
# packing 1,500 commands. The feature strings come back as the MGET gave them: joining them here
# took Redis ~0.25 ms per read (Lua's table.concat of ~40 KB, a check per string), and the
# worker joins them in ~30 us (`stored_counts_many`). Keys are built here from the prefixes
# `streams.serving.keys` gives (undeclared keys: one Redis, not a cluster). In a learning bucket it
# also reads the viewer's feedback on the authors (`streams.ranked.feedback_store`).
#   ARGV: tweet prefix, tweet features prefix, signal prefix, author features prefix,
#         viewer x author features prefix, viewer features key, viewer's served key, the
#         viewer's feedback key ('' outside a learning bucket), tweet ids.
#   Returns {distinct authors (in first-seen order), each tweet's author (nil: tweet gone),
#            {position, retweet_of, ...}, feature strings (nil: none) of the viewer, authors,
#            viewer x authors and tweets, {position, signal string, ...}, positions served before,
#            the feedback values of `lift_fields(distinct authors)` (empty outside a learning
#            bucket)}; positions count from 0.
HYDRATE = """
local ids, signal_keys, author_of, retweets, authors, seen = {}, {}, {}, {}, {}, {}
for id in string.gmatch(ARGV[9], '%d+') do
  local i = #ids + 1
  ids[i] = id
  signal_keys[i] = ARGV[3] .. id
  local t = redis.call('HMGET', ARGV[1] .. id, 'author_id', 'retweet_of')
  author_of[i] = t[1]
  if t[2] then
    retweets[#retweets + 1] = i - 1
    retweets[#retweets + 1] = t[2]
  end
  if t[1] and not seen[t[1]] then
    seen[t[1]] = true
    authors[#authors + 1] = t[1]
  end
end
local keys = {ARGV[6]}
for _, a in ipairs(authors) do keys[#keys + 1] = ARGV[4] .. a end
for _, a in ipairs(authors) do keys[#keys + 1] = ARGV[5] .. a end
for _, id in ipairs(ids) do keys[#keys + 1] = ARGV[2] .. id end
local features = redis.call('MGET', unpack(keys))
local signals = {}
for i, v in ipairs(redis.call('MGET', unpack(signal_keys))) do
  if v then
    signals[#signals + 1] = i - 1
    signals[#signals + 1] = v
  end
end
local served = {}
for i, v in ipairs(redis.call('ZMSCORE', ARGV[7], unpack(ids))) do
  if v then served[#served + 1] = i - 1 end
end
local feedback = {}
if ARGV[8] ~= '' then
  feedback = redis.call('HMGET', ARGV[8], 'viewer', unpack(authors))
end
return {authors, author_of, retweets, features, signals, served, feedback}
"""


def _pairs(flat: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
    """(position, value) pairs of a script's flat {position, value, ...} list."""
    return zip(flat[::2], flat[1::2], strict=True)


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
        user_id, now = query.user_id, query.now_ms
        reply: list[Any] = await self._redis.eval(
            HYDRATE,
            0,
            TWEET_PREFIX,
            features_key(HomeFeatures.TWEET, ""),
            features_key(HomeFeatures.SIGNAL, ""),
            features_key(HomeFeatures.AUTHOR, ""),
            features_key(HomeFeatures.USER_AUTHOR, HomeFeatures.user_author_prefix(user_id)),
            features_key(HomeFeatures.USER, str(user_id)),
            served_key(user_id),
            feedback_key(user_id) if self._feedback else "",
            " ".join([str(item.tweet_id) for item in items]),
        )
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
