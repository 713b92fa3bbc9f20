"""The A/B bandit's state in Redis (`streams.mixer.adaptation` is its math): one hash per bucket,
`{app}:adapt:<bucket>`. The served recorder counts what each arm served; the aggregator credits the
arm that served a tweet a positive engagement hit (`record_feedback`); the learning node fades the
arms (`discount_bandit`); every ranked read and `user_scores` plan with `load_adaptation`."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from streams.mixer.adaptation import (
    BANDIT_HALF_LIFE_MS,
    Adaptation,
    discount_factor,
    discounted_fields,
    feedback_increments,
    total_fields,
)
from streams.serving.keys import adaptation_key, parse_served_tag, served_by_key
from streams.serving.scripts import Script
from streams.serving.view import ServingReads, float_fields

# The field of a bucket's hash that says when its arms were last discounted (ms).
DISCOUNTED_AT = "discounted_at"

# Engagements that count as the served tweet having worked, for the bandit's reward.
REWARD_KINDS = frozenset(
    {"like", "retweet", "reply", "quote", "bookmark", "share", "click", "profile_click", "video_view"}
)

# Fades one bucket's arms, once per interval however many discounters race.
DISCOUNT = Script("streams.ranked", "discount.lua")


async def record_feedback(redis: Redis, engagements: Sequence[tuple[int, int]]) -> int:
    """Credit the bucket and strategy that served each (user, tweet) a positive engagement hit;
    each served tweet is credited once (its served-by entry is removed). Returns the credits."""
    # A like and a retweet of one tweet in one batch would both read its tag before either deletes it.
    engagements = list(dict.fromkeys(engagements))
    if not engagements:
        return 0
    tags = await ServingReads(redis).fields(
        [(served_by_key(user), str(tweet)) for user, tweet in engagements]
    )
    pipe = redis.pipeline(transaction=False)
    credited = 0
    for (user, tweet), tag in zip(engagements, tags, strict=True):
        if tag is None:
            continue
        bucket, strategy = parse_served_tag(tag)
        for field, amount in feedback_increments(strategy, 0, 1).items():
            if amount:
                pipe.hincrbyfloat(adaptation_key(bucket), field, amount)
        pipe.hdel(served_by_key(user), str(tweet))
        credited += 1
    if credited:
        await pipe.execute()
    return credited


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
        done += await DISCOUNT(
            redis, [key], [DISCOUNTED_AT, last or "", repr(factor), now_ms, *totals, *fields]
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
