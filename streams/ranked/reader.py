"""`mode=ranked`: the mixer pipeline (`streams.mixer`) fed from Redis.

Candidate sources read the pushed timeline, the followed celebrities' tweets and the trending
set; the hydrator reads the viewer's graph and every candidate's tweet and feature hashes in one
pipeline; the side effect records what was served (for paging filters and for the bandit's
feedback). Which weights a request uses comes from its A/B bucket's bandit, kept in Redis.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Sequence
from typing import Any, cast

from redis.asyncio import Redis

from streams.mixer.adaptation import (
    BANDIT_HALF_LIFE_MS,
    Adaptation,
    discount_factor,
    discounted_fields,
    feedback_increments,
    total_fields,
)
from streams.mixer.components import PageItem, Query, SourceItem, ViewerContext
from streams.mixer.engagement_model import ScoringModel
from streams.mixer.features import (
    CandidateFeatures,
    HomeFeatures,
    decayed_boosts,
    stored_counts_many,
    tweet_age_ms,
)
from streams.mixer.pipeline import RankedPipeline, ranked_pipeline_config
from streams.ranked.feedback_store import decode_lifts
from streams.ranked.served_outcomes import load_calibration, record_served_predictions
from streams.serving.keys import (
    TRENDING,
    TWEET_PREFIX,
    adaptation_key,
    features_key,
    feedback_key,
    served_by_key,
    served_key,
)
from streams.serving.view import ServingReads, UserContext, float_fields
from streams.settings import DEFAULT_CALIBRATION_LABEL_S
from streams.timelines.cache import TimelineCache
from streams.timelines.reader import TimelineReader

# The mixer ranks up to this many candidates per request (Home Mixer scores ~1,500; 2 cores, 500).
MAX_CANDIDATES = 500
TRENDING_CANDIDATES = 100
# What a user was served stays known this long for the "previously served" filter and feedback.
SERVED_KEEP = 2000


class RedisCandidates:
    def __init__(self, redis: Redis, store: TimelineCache, reads: ServingReads, context: UserContext) -> None:
        self._redis = redis
        self._store = store
        self._reads = reads
        self._context = context

    async def timeline(self, query: Query) -> Sequence[SourceItem]:
        ids = await self._store.read(query.user_id, MAX_CANDIDATES, query.max_id) or []
        return [SourceItem(t) for t in ids]

    async def celebrities(self, query: Query) -> Sequence[SourceItem]:
        celebs = sorted(self._context.celebrities)
        if not celebs:
            return []
        per_author = max(1, MAX_CANDIDATES // (2 * len(celebs)))
        pulled = await self._reads.authored(celebs, per_author, query.max_id)
        return [SourceItem(t, author) for author, ids in pulled.items() for t in ids]

    async def trending(self, query: Query) -> Sequence[SourceItem]:
        raw = cast(
            list[tuple[bytes, float]],
            await self._redis.zrevrange(TRENDING, 0, TRENDING_CANDIDATES - 1, withscores=True),
        )
        items = [(int(member), score) for member, score in raw]
        if query.max_id is not None:
            items = [(t, s) for t, s in items if t < query.max_id]
        return [SourceItem(t, reason=f"trending: signal boost {s:.2f}") for t, s in items]


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


# What the read path keeps of a ranked page, in one script call with its ids as one argument: the
# served set for the "previously served" filter, each tweet's bucket/strategy for the bandit's
# reward (`record_feedback`), and the serving arm's counts. The served set keeps the newest
# `SERVED_KEEP`; a tweet trimmed from it leaves the served-by hash too, which would otherwise keep
# every tweet never engaged with. So the hash never holds more than the set; one that does was
# left by an earlier version and is cleaned once.
#   ARGV: served key, served-by key, the bucket's adaptation key, now ms, how many to keep, the
#         bucket/strategy tag, the tweet ids, then the arm's field, amount pairs.
SERVE = """
local served, served_by, now, tag = ARGV[1], ARGV[2], ARGV[4], ARGV[6]
local scored, tagged = {}, {}
for id in string.gmatch(ARGV[7], '%d+') do
  scored[#scored + 1] = now
  scored[#scored + 1] = id
  tagged[#tagged + 1] = id
  tagged[#tagged + 1] = tag
end
redis.call('ZADD', served, unpack(scored))
redis.call('HSET', served_by, unpack(tagged))
local stop = -(tonumber(ARGV[5]) + 1)
local trimmed = redis.call('ZRANGE', served, 0, stop)
if #trimmed > 0 then
  redis.call('ZREMRANGEBYRANK', served, 0, stop)
  redis.call('HDEL', served_by, unpack(trimmed))
end
if redis.call('HLEN', served_by) > tonumber(ARGV[5]) then
  for _, id in ipairs(redis.call('HKEYS', served_by)) do
    if not redis.call('ZSCORE', served, id) then redis.call('HDEL', served_by, id) end
  end
end
for i = 8, #ARGV, 2 do redis.call('HINCRBYFLOAT', ARGV[3], ARGV[i], ARGV[i + 1]) end
"""


class RedisServedRecorder:
    def __init__(self, redis: Redis, label_window_ms: int, keep: int = SERVED_KEEP) -> None:
        self._redis = redis
        self._label_window_ms = label_window_ms
        self._keep = keep

    async def record_served(self, query: Query, items: Sequence[PageItem]) -> None:
        if not items:
            return
        increments = feedback_increments(query.strategy, len(items), 0)
        pipe = self._redis.pipeline(transaction=False)
        pipe.eval(
            SERVE,
            0,
            served_key(query.user_id),
            served_by_key(query.user_id),
            adaptation_key(query.bucket),
            query.now_ms,
            self._keep,
            f"{query.bucket}/{query.strategy}",
            " ".join([str(i.tweet_id) for i in items]),
            *(x for field, amount in increments.items() if amount for x in (field, amount)),
        )
        record_served_predictions(pipe, query.user_id, query.now_ms, items, self._label_window_ms)
        await pipe.execute()


class RankedReader:
    def __init__(
        self,
        redis: Redis,
        reader: TimelineReader,
        store: TimelineCache,
        frozen: bool,
        label_window_ms: int = DEFAULT_CALIBRATION_LABEL_S * 1000,
    ) -> None:
        self._redis = redis
        self._reader = reader
        self._store = store
        self._frozen = frozen
        self._label_window_ms = label_window_ms
        self._rng = random.Random()

    async def adaptation(self) -> Adaptation:
        adaptation = await load_adaptation(self._redis)
        if self._frozen:
            adaptation.freeze()
        return adaptation

    async def ranked(self, user_id: int, limit: int, max_id: int | None, now_ms: int) -> dict[str, Any]:
        (context, rebuilt), adaptation, calibration = await asyncio.gather(
            self._reader.prepare(user_id, now_ms), self.adaptation(), load_calibration(self._redis)
        )
        bucket, strategy, weights = adaptation.plan(user_id, self._rng)
        query = Query(user_id, limit, max_id, now_ms, bucket, strategy, weights)
        reads = ServingReads(self._redis)
        candidates = RedisCandidates(self._redis, self._store, reads, context)
        config = ranked_pipeline_config(
            timeline=candidates.timeline,
            celebrities=candidates.celebrities,
            trending=candidates.trending,
            hydrator=RedisHydrator(
                self._redis, context, feedback=bucket in adaptation.learning, frozen=self._frozen
            ),
            recorder=RedisServedRecorder(self._redis, self._label_window_ms),
            model=ScoringModel(calibration=calibration),
        )
        pipeline = RankedPipeline(config)
        page = await pipeline.page(query)
        # Recording what was served and reading the page's texts are independent round trips.
        _, tweets = await asyncio.gather(
            pipeline.side_effects(query, page), reads.tweets(item.tweet_id for item in page.items)
        )
        body = page.to_json()
        for item in body["items"]:
            item["tweet_id_str"] = str(item["tweet_id"])
            item["text"] = tweets.get(item["tweet_id"], {}).get("text", "")
        # The next page ranks what is older than this page's oldest item; the "previously served"
        # filter then drops what this page already showed.
        full = len(page.items) == limit
        next_max_id = min(item.tweet_id for item in page.items) if full else None
        return {**body, "user_id": user_id, "rebuilt": rebuilt, "next_max_id": next_max_id}


# The field of a bucket's hash that says when its arms were last discounted (ms).
DISCOUNTED_AT = "discounted_at"

# Engagements that count as the served tweet having worked, for the bandit's reward.
POSITIVE_KINDS = frozenset(
    {"like", "retweet", "reply", "quote", "bookmark", "share", "click", "profile_click", "video_view"}
)


async def record_feedback(redis: Redis, engagements: Sequence[tuple[int, int]]) -> int:
    """Credit the bucket and strategy that served each (user, tweet) a positive engagement hit;
    each served tweet is credited once (its served-by entry is removed). Returns the credits."""
    # A like and a retweet of one tweet in one batch would both read its tag before either deletes it.
    engagements = list(dict.fromkeys(engagements))
    if not engagements:
        return 0
    pipe = redis.pipeline(transaction=False)
    for user, tweet in engagements:
        pipe.hget(served_by_key(user), str(tweet))
    tags = await pipe.execute()
    pipe = redis.pipeline(transaction=False)
    credited = 0
    for (user, tweet), tag in zip(engagements, tags, strict=True):
        if tag is None:
            continue
        bucket, strategy = tag.decode().split("/", 1)
        for field, amount in feedback_increments(strategy, 0, 1).items():
            if amount:
                pipe.hincrbyfloat(adaptation_key(bucket), field, amount)
        pipe.hdel(served_by_key(user), str(tweet))
        credited += 1
    if credited:
        await pipe.execute()
    return credited


# Scales the arms' counts of one bucket's hash, unless another discounter got there first. The
# first call only starts the clock, and sets the bucket's totals to the sums of its arms: a hash
# kept before the totals existed gets its whole history (the arms are not faded before it).
#   ARGV: the bucket's key, the discounted-at field, its value as read ('' if none), factor,
#         now ms, the total served and engaged fields, then each arm's served and engaged fields.
DISCOUNT = """
local key = ARGV[1]
if (redis.call('HGET', key, ARGV[2]) or '') ~= ARGV[3] then return 0 end
if ARGV[3] == '' then
  local served, engaged = 0, 0
  for i = 8, #ARGV, 2 do
    served = served + tonumber(redis.call('HGET', key, ARGV[i]) or '0')
    engaged = engaged + tonumber(redis.call('HGET', key, ARGV[i + 1]) or '0')
  end
  redis.call('HSET', key, ARGV[6], served, ARGV[7], engaged)
else
  for i = 8, #ARGV do
    local v = redis.call('HGET', key, ARGV[i])
    if v then redis.call('HSET', key, ARGV[i], tonumber(v) * tonumber(ARGV[4])) end
  end
end
redis.call('HSET', key, ARGV[2], ARGV[5])
return 1
"""


async def discount_bandit(redis: Redis, now_ms: int, half_life_ms: float = BANDIT_HALF_LIFE_MS) -> int:
    """Fade every bucket's arms by the time since the last discount (`Adaptation.discount`);
    the first call only starts the clock. Each bucket is discounted at most once per interval
    however many workers call this. Returns the buckets discounted."""
    adaptation = Adaptation()
    totals = total_fields()
    fields = discounted_fields(list(adaptation.strategies))
    done = 0
    for bucket in adaptation.buckets:
        key = adaptation_key(bucket)
        last = await redis.hget(key, DISCOUNTED_AT)
        factor = discount_factor(max(0.0, now_ms - float(last)), half_life_ms) if last else 1.0
        done += await redis.eval(
            DISCOUNT, 0, key, DISCOUNTED_AT, last or "", repr(factor), now_ms, *totals, *fields
        )
    return done


async def bucket_metrics(redis: Redis) -> dict[str, dict[str, float]]:
    """Served, engaged and engagement rate per A/B bucket, from the bandit state in Redis."""
    return (await load_adaptation(redis)).metrics()


async def load_adaptation(redis: Redis) -> Adaptation:
    """Every bucket's learning state as the read path and the aggregator keep it in Redis."""
    buckets = Adaptation().buckets
    pipe = redis.pipeline(transaction=False)
    for bucket in buckets:
        pipe.hgetall(adaptation_key(bucket))
    rows = await pipe.execute()
    return Adaptation(state={b: float_fields(r) for b, r in zip(buckets, rows, strict=True)})
