"""What the scorer reads of one candidate, and the names of the stored features it is read from.

The aggregator keeps, per entity, a Redis string `{app}:f:<entity>:<id>`: the `STORED_FIELDS` of
`streams.features.aggregates.scoring_fields` (each scored kind's 24h-decayed count, the impressions and the
time `ts` they are as of) packed by `pack_stored` as doubles in that order. The signal
booster keeps `{app}:f:signal:<tweet_id>` with `SIGNAL_FIELDS` (`boost`, `ts`). Strings, not hashes:
a ranked request reads ~1,000 of them and one MGET is ~40x cheaper than as many HMGETs.
`stored_counts_many` / `decayed_boosts` decode a request's strings in one numpy pass and bring
every value to the request's clock; `tweet_age_ms` reads a tweet's age off its Snowflake id.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Final, NamedTuple, cast

import numpy as np
import numpy.typing as npt

from streams.features.decay import HALF_LIVES, exponential_factors
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

    # Entity types of `streams.serving.keys.features_key(entity_type, entity_id)`.
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
        return f"{HomeFeatures.user_author_prefix(user_id)}{author_id}"

    @staticmethod
    def user_author_prefix(user_id: int) -> str:
        """What every `user_author_id` of the viewer starts with."""
        return f"{user_id}:"


HALF_LIFE_MS: Final = float(HALF_LIVES[HomeFeatures.HALF_LIFE])

FloatArray = npt.NDArray[np.float64]


COUNTS_WIDTH: Final = len(KINDS) + 1


class EntityCounts:
    """One entity's 24h-decayed engagement counts per kind, and its decayed impressions.

    Held as one row of a matrix: the counts in `KINDS` order, then the impressions. The entities
    of one decoded request share one matrix (`stored_counts_many`), from which the scorer gathers
    its rows without converting them back (`stack_counts`); any other holds a row of its own."""

    __slots__ = ("_matrix", "_index")

    def __init__(self, counts: Mapping[str, float] | None = None, impressions: float = 0.0) -> None:
        get = (counts or {}).get
        self._matrix: FloatArray = np.array([[*[get(kind, 0.0) for kind in KINDS], impressions]])
        self._index = 0

    @classmethod
    def rows_of(cls, matrix: FloatArray) -> list[EntityCounts]:
        """One entity per row of `matrix` (n x `COUNTS_WIDTH`), sharing it."""
        out = []
        for i in range(len(matrix)):
            counts = cls.__new__(cls)
            counts._matrix = matrix
            counts._index = i
            out.append(counts)
        return out

    @property
    def row(self) -> tuple[float, ...]:
        return tuple(self._matrix[self._index].tolist())

    @property
    def counts(self) -> dict[str, float]:
        """The nonzero counts by kind."""
        return {kind: v for kind, v in zip(KINDS, self.row[:-1], strict=True) if v}

    @property
    def impressions(self) -> float:
        return self.row[-1]

    def count(self, kind: str) -> float:
        return self.row[KINDS.index(kind)]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EntityCounts) and self.row == other.row

    def __hash__(self) -> int:
        return hash(self.row)

    def __repr__(self) -> str:
        return f"EntityCounts({self.counts!r}, {self.impressions!r})"


def stack_counts(entities: Sequence[EntityCounts]) -> FloatArray:
    """The entities' rows as one matrix (n x `COUNTS_WIDTH`), in order. Rows of one decoded
    request are gathered from its matrix by index; otherwise each distinct entity is converted
    once (a page's candidates share a few authors and one viewer)."""
    if not entities:
        return np.empty((0, COUNTS_WIDTH))
    shared = entities[0]._matrix
    if all(e._matrix is shared for e in entities):
        return shared[[e._index for e in entities]]
    distinct = {id(e): e for e in entities}
    position = {key: i for i, key in enumerate(distinct)}
    rows = np.array([e.row for e in distinct.values()], dtype=np.float64).reshape(-1, COUNTS_WIDTH)
    return rows[list(map(position.__getitem__, map(id, entities)))]


NO_COUNTS: Final = EntityCounts()


class CandidateFeatures(NamedTuple):
    """Everything the scorer, filters and selectors read of a candidate tweet for one viewer.
    A NamedTuple: a request builds hundreds, and a frozen dataclass costs ~7x as much to build."""

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
    # Served to the viewer before: PreviouslyServed drops it when paging, ServedBefore demotes it
    # on a fresh request.
    served_before: bool = False
    # The viewer's learnt weight on the author's positive engagements (`streams.mixer.viewer_feedback`);
    # 1 outside a learning bucket and for an author with no feedback yet.
    feedback_lift: float = 1.0

    @classmethod
    def deleted_tweet(cls, tweet_id: int, author_id: int = 0) -> CandidateFeatures:
        """What a hydrator answers for a candidate whose tweet no longer exists."""
        return cls(tweet_id=tweet_id, author_id=author_id, in_network=False, deleted=True)


# What a stored feature string holds, in this order (`pack_stored`).
STORED_FIELDS: Final[tuple[str, ...]] = (*KINDS, HomeFeatures.IMPRESSION, HomeFeatures.TS)
SIGNAL_FIELDS: Final[tuple[str, ...]] = (HomeFeatures.SIGNAL_BOOST, HomeFeatures.TS)


def stored_layout(entity_type: str) -> tuple[str, ...]:
    return SIGNAL_FIELDS if entity_type == HomeFeatures.SIGNAL else STORED_FIELDS


# A stored feature string is this tag byte, then the layout's fields as little-endian doubles. Binary:
# a ranked request decodes ~1,000 of them (~9,000 numbers) in one `np.frombuffer`, where parsing
# them from text took a tenth of the request. Text strings, which a text parser could never start
# with this byte, are what earlier versions wrote; they are still read.
PACKED_TAG: Final = 1


def pack_stored(values: Mapping[str, float], layout: Sequence[str]) -> bytes:
    """`values` of the layout's fields, packed; an absent field is NaN."""
    return bytes((PACKED_TAG,)) + struct.pack(f"<{len(layout)}d", *(values.get(n, math.nan) for n in layout))


def absent_row(layout: Sequence[str]) -> bytes:
    """The packed row of no values: what a missing key decodes as."""
    return pack_stored({}, layout)


def _packed_table(joined: bytes, layout: Sequence[str]) -> FloatArray:
    """Packed rows end to end as a (read-only) table."""
    record = np.dtype([("tag", "u1"), ("values", "<f8", (len(layout),))])
    return cast(FloatArray, np.frombuffer(joined, dtype=record)["values"])


def _table(stored: Sequence[bytes | None], layout: Sequence[str]) -> FloatArray:
    """Stored strings as rows of the layout's fields; NaN for an absent field or key. The packed
    rows, with `absent_row` standing in for every other string, decode in one `np.frombuffer`;
    text rows (an earlier version's) are parsed after, and a broken string fails the decoding."""
    absent = absent_row(layout)
    width = len(absent)
    rows = [s if s is not None and len(s) == width and s[0] == PACKED_TAG else absent for s in stored]
    table = _packed_table(b"".join(rows), layout)
    odd = [i for i, s in enumerate(stored) if s and rows[i] is absent]
    if odd:
        strings = [cast(bytes, stored[i]) for i in odd]
        # A packed string of the wrong length: no text parser could have written its first byte.
        _check(strings, lambda row: row[0] != PACKED_TAG, layout)
        table = table.copy()
        table[odd] = _text_table(strings, layout)
    return table


def _check(rows: Sequence[bytes], fits: Callable[[bytes], bool], layout: Sequence[str]) -> None:
    # Per row: a short one and a long one would add up to the right total and shift every field.
    bad = next((row for row in rows if not fits(row)), None)
    if bad is not None:
        raise ValueError(f"stored features {bad!r} do not have the {len(layout)} fields {layout}")


def _text_table(rows: Sequence[bytes], layout: Sequence[str]) -> FloatArray:
    """Rows of comma-separated text, as earlier versions stored them ("" or "nan" when absent)."""
    _check(rows, lambda row: row.count(b",") == len(layout) - 1, layout)
    fields = [float(f or b"nan") for f in b",".join(rows).split(b",")]
    return np.array(fields, dtype=np.float64).reshape(len(rows), len(layout))


def _decayed(table: FloatArray, now_ms: int) -> FloatArray:
    """A table's values (every column but the last, `ts`) decayed from `ts` to `now_ms`; absent
    values are 0, and values with no `ts` are taken as current."""
    ts = table[:, -1]
    factor = np.where(np.isnan(ts), 1.0, exponential_factors(now_ms - ts, HALF_LIFE_MS))
    return np.nan_to_num(table[:, :-1], nan=0.0) * factor[:, None]


def stored_counts_many(stored: Sequence[bytes | None], now_ms: int) -> list[EntityCounts]:
    """Entities' stored feature strings as counts decayed to `now_ms`, in order.

    A missing key (no engagement yet) gives zero counts. Decay scales counts and impressions
    alike, so rates are unchanged; what changes is how much evidence they carry against the
    scorer's priors.
    """
    return EntityCounts.rows_of(_decayed(_table(stored, STORED_FIELDS), now_ms))


def entity_counts(fields: Mapping[str, float], now_ms: int) -> EntityCounts:
    """An entity's fields as `streams.features.aggregates.scoring_fields` gives them, decoded as the read
    path decodes their stored string (`stored_counts_many`)."""
    return stored_counts_many([pack_stored(fields, STORED_FIELDS)], now_ms)[0]


def decayed_boosts(stored: Sequence[bytes | None], now_ms: int) -> list[float]:
    """Tweets' stored signal strings (`{app}:f:signal:<id>`) as their boosts decayed to `now_ms`."""
    return cast(list[float], _decayed(_table(stored, SIGNAL_FIELDS), now_ms)[:, 0].tolist())


def tweet_age_ms(tweet_id: int, now_ms: int) -> float:
    """Age of a tweet from its Snowflake id; never negative (a clock slightly behind the id's)."""
    return float(max(0, now_ms - snowflake_ms(tweet_id)))
