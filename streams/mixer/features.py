"""What the scorer reads of one candidate, and the names of the stored features it is read from.

The aggregator keeps, per entity, a Redis hash `hm:f:<entity>:<id>` (`streams.aggregates.
scoring_fields`): one field per engagement type holding its 24h-decayed count as of the field `ts`.
The signal booster keeps `hm:f:signal:<tweet_id>` with `boost` and `ts`. A hydrator reads those
hashes, decodes them to floats and calls `entity_counts` / `decayed_boost`, which bring every value
to the request's clock; `tweet_age_ms` reads a tweet's age off its Snowflake id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from streams.decay import HALF_LIVES, exponential
from streams.snowflake import snowflake_ms

# The engagement kinds the scorer predicts; each is an `EngagementType` of engagement_events.
KINDS: Final[tuple[str, ...]] = (
    "like",
    "retweet",
    "reply",
    "click",
    "profile_click",
    "not_interested",
    "report",
)
POSITIVE_KINDS: Final[tuple[str, ...]] = ("like", "retweet", "reply", "click", "profile_click")
NEGATIVE_KINDS: Final[tuple[str, ...]] = ("not_interested", "report")


class HomeFeatures:
    """Every stored name the mixer reads, in one place (after product-mixer's `HomeFeatures`)."""

    # Entity types of `streams.redis_keys.features_key(entity_type, entity_id)`.
    TWEET: Final = "tweet"  # engagements the tweet received; id = tweet id
    AUTHOR: Final = "author"  # engagements the author's tweets received; id = author id
    USER: Final = "user"  # engagements the viewer gave (habits); id = viewer id
    USER_AUTHOR: Final = "user_author"  # engagements the viewer gave the author (affinity); "user:author"
    SIGNAL: Final = "signal"  # real-time signals pointing at the tweet; id = tweet id

    # Fields of those hashes. Engagement counts are named by their kind ("like", "reply", ...).
    HALF_LIFE: Final = "24h"  # the half-life of every stored count the scorer reads
    TS: Final = "ts"  # ms: the time the stored values are as of
    IMPRESSION: Final = "impression"  # decayed impressions: the denominator of every rate
    SIGNAL_BOOST: Final = "boost"  # decayed sum of signal weights (signal entity only)

    @staticmethod
    def user_author_id(user_id: int, author_id: int) -> str:
        return f"{user_id}:{author_id}"


HALF_LIFE_MS: Final = float(HALF_LIVES[HomeFeatures.HALF_LIFE])


@dataclass(frozen=True, slots=True)
class EntityCounts:
    """One entity's 24h-decayed engagement counts per kind, and its decayed impressions."""

    counts: Mapping[str, float] = field(default_factory=dict)
    impressions: float = 0.0

    def count(self, kind: str) -> float:
        return self.counts.get(kind, 0.0)


NO_COUNTS: Final = EntityCounts()


@dataclass(frozen=True, slots=True)
class CandidateFeatures:
    """Everything the scorer, filters and selectors read of a candidate tweet for one viewer."""

    tweet_id: int
    author_id: int
    # The viewer follows the author (pushed or pulled), as opposed to out-of-network (trending).
    in_network: bool
    # The original tweet's id when this tweet is a retweet.
    retweet_of: int | None = None
    tweet: EntityCounts = NO_COUNTS  # engagements the tweet received
    author: EntityCounts = NO_COUNTS  # engagements the author's tweets received
    user: EntityCounts = NO_COUNTS  # engagements the viewer gave anyone: habits
    user_author: EntityCounts = NO_COUNTS  # engagements the viewer gave this author: affinity
    age_ms: float = 0.0
    # Decayed (24h) weight of the real-time signals (trending, breaking news) naming the tweet.
    signal_boost: float = 0.0
    # The tweet is gone from the store: DeletedFilter drops it.
    deleted: bool = False

    @classmethod
    def deleted_tweet(cls, tweet_id: int, author_id: int = 0) -> CandidateFeatures:
        """What a hydrator answers for a candidate whose tweet no longer exists."""
        return cls(tweet_id=tweet_id, author_id=author_id, in_network=False, deleted=True)


def _decay_factor(fields: Mapping[str, float], now_ms: int) -> float:
    ts = fields.get(HomeFeatures.TS)
    if ts is None:
        return 1.0
    return exponential(1.0, max(0.0, now_ms - ts), HALF_LIFE_MS)


def entity_counts(fields: Mapping[str, float], now_ms: int) -> EntityCounts:
    """An entity's stored hash (fields decoded to floats) as counts decayed to `now_ms`.

    A missing hash (no engagement yet) is `{}` and gives zero counts. Decay scales counts and
    impressions alike, so rates are unchanged; what changes is how much evidence they carry
    against the scorer's priors.
    """
    factor = _decay_factor(fields, now_ms)
    counts = {kind: fields[kind] * factor for kind in KINDS if kind in fields}
    return EntityCounts(counts, fields.get(HomeFeatures.IMPRESSION, 0.0) * factor)


def decayed_boost(fields: Mapping[str, float], now_ms: int) -> float:
    """A tweet's signal boost (`hm:f:signal:<id>`, decoded to floats) decayed to `now_ms`."""
    return fields.get(HomeFeatures.SIGNAL_BOOST, 0.0) * _decay_factor(fields, now_ms)


def tweet_age_ms(tweet_id: int, now_ms: int) -> float:
    """Age of a tweet from its Snowflake id; never negative (a clock slightly behind the id's)."""
    return float(max(0, now_ms - snowflake_ms(tweet_id)))
