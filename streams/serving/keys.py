"""Every Redis key homemixer uses, and every member, field or value made of parts: a search for
the app id's prefix elsewhere finds nothing.

Redis holds what the read path needs, so that any worker can serve any user's timeline without
asking the worker that owns the user's partition. RocksDB state is the source of truth: after a
Redis loss each worker writes its partitions' part of this back (`ready` says when), and timelines
are rebuilt on read.

`{app}` is the app id (`HOMEMIXER_APP_ID`, default `homemixer`): every key starts with
`app_prefix(app_id)`, so that apps of different ids share a Redis without seeing each other's keys
and `homemixer reset` finds all of an app's keys by one SCAN pattern (`app_pattern`). A worker's
keys are `KEYS`, the `RedisKeys` of the app id in its environment; the module-level names below
are its members, so that callers import a key's builder and not the app id.

A user's keys that one script or one command reads together carry the user id as a Redis Cluster
hash tag (`homemixer:tl:{42}`, written `{app}:tl:{user}` below like every key; the braces of
the tagged ones, marked *, are literal): on a cluster the timeline, follows, blocks, mutes,
not-interested, served and feedback keys of one user share a hash slot, so a script may touch
them together and SUNION may join them. Each partition has a ready key on every shard (every
master of a cluster, tagged by one of its slots: `connection.shard_tags`; `0` on one Redis), so
that a master lost and back empty is seen as a partition's part gone, whichever user's keys it
held. The
calibration's keys (the fit, the pending queue and every user's served records) share the tag
`{cal}`: its fitter takes, learns and forgets them in one transaction, and `mark.lua` marks many
users' records in one call.

| key | type | what (written by) |
| --- | --- | --- |
| `{app}:tl:{user}`* | zset, score = member = tweet id | home timeline + sentinel "0" (fanout, reads) |
| `{app}:fo:{user}`* | set of user ids | whom the user follows (graph) |
| `{app}:celebs` | set of user ids | authors at or over the celebrity threshold (graph) |
| `{app}:au:{author}` | zset, score = member = tweet id | the author's newest tweets (fanout) |
| `{app}:tw:{tweet}` | hash | a tweet's fields for hydration; gone once deleted (fanout) |
| `{app}:bk:{user}`*, `{app}:bkby:{user}`* | set of user ids | whom they blocked, who blocked them (graph) |
| `{app}:mu:{user}`* | set of user ids | whom the user muted (graph) |
| `{app}:active` | zset, score = ms | each user's latest activity: any event, or a read (parser, reads) |
| `{app}:ready:{shard}:{partition}`* | string | the partition's part of the above is on the shard (workers) |
| `{app}:f:{entity}` | string | packed features for scoring, e.g. `{app}:f:tweet:9` (aggregator, booster) |
| `{app}:lk:{tweet}` | string | the tweet's like count, net of unlikes, as the page shows it (aggregator) |
| `{app}:trending` | zset, score = boost | tweets that real-time signals point at (signal booster) |
| `{app}:ni:{user}`* | set of user ids | authors the user said `not_interested` in (aggregator) |
| `{app}:served:{user}`* | zset, score = ms | the newest 2,000 tweets served to the user, ranked (read path) |
| `{app}:servedby:{user}`* | hash | served tweet -> `bucket/strategy`, until credited (reads, aggregator) |
| `{app}:adapt:{bucket}` | hash | the bucket's learning state and engagement counts (read path, aggregator) |
| `{app}:cal:{cal}:{user}`* | hash | tweet -> predictions served; `{tweet}:{kind}`: done (reads, aggregator) |
| `{app}:cal:{cal}:pending`* | zset, score = ms | `{user}:{tweet}` served, awaiting outcome (reads; fitter) |
| `{app}:calibration:{cal}`* | hash | the scorer's Platt fit per segment and kind (fitter) |
| `{app}:fb:{user}`* | hash | viewer feedback: `{author}`, `viewer` -> "engaged expected ts" (fitter) |

Each format made of parts has one build function here, and one parse function where Python reads
it back. A script that must build or parse one from what it reads in Redis does so itself, and
only these do: `take_matured.lua` parses `{user}:{tweet}` and builds `{tweet}:{kind}`,
`hydrate.lua` and `latest_page.lua` build their candidates' keys from prefixes (the scripts say
why), `latest_page.lua` skips the timeline sentinel, and `fanout.lua`
and `merge.lua` write the timeline sentinel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from streams.settings import app_id_from_env

# Extra rows per read of a sorted set scored by tweet id (`{app}:tl`, `{app}:au`): scores are
# doubles, so ids next to `max_id` can share its score. A page that starts at `max_id` (the previous
# page's last id) always skips that id itself, and rarely a few more; the readers filter them out.
READ_SLACK: Final = 8

# The hash tag of every calibration key (module doc).
CALIBRATION_TAG: Final = "{cal}"

# Characters SCAN MATCH reads as a pattern; an app id holding one must match only itself.
_GLOB_SPECIAL: Final = "\\*?[]^"


def app_prefix(app_id: str) -> str:
    """The start of every Redis key of the app `app_id`."""
    return f"{app_id}:"


def app_pattern(app_id: str) -> str:
    """A SCAN MATCH pattern for every Redis key of the app `app_id`, and no other app's."""
    return _starting_with(app_prefix(app_id))


def _tag(entity: int) -> str:
    """`entity` as a Redis Cluster hash tag: keys holding the same tag share a hash slot."""
    return f"{{{entity}}}"


def _starting_with(prefix: str) -> str:
    escaped = "".join(f"\\{c}" if c in _GLOB_SPECIAL else c for c in prefix)
    return f"{escaped}*"


@dataclass(frozen=True)
class RedisKeys:
    """The Redis keys of one app id: one method builds each key, and the constants are the keys
    and key prefixes that take no argument."""

    app_id: str

    @property
    def prefix(self) -> str:
        return app_prefix(self.app_id)

    @property
    def timeline_prefix(self) -> str:
        return f"{self.prefix}tl:"

    @property
    def timeline_pattern(self) -> str:
        """A SCAN MATCH pattern for every home timeline."""
        return _starting_with(self.timeline_prefix)

    @property
    def tweet_prefix(self) -> str:
        return f"{self.prefix}tw:"

    @property
    def authored_prefix(self) -> str:
        return f"{self.prefix}au:"

    @property
    def likes_prefix(self) -> str:
        return f"{self.prefix}lk:"

    @property
    def calibration_served_prefix(self) -> str:
        return f"{self.prefix}cal:{CALIBRATION_TAG}:"

    @property
    def celebrities(self) -> str:
        return f"{self.prefix}celebs"

    @property
    def active(self) -> str:
        return f"{self.prefix}active"

    @property
    def trending(self) -> str:
        return f"{self.prefix}trending"

    @property
    def calibration(self) -> str:
        return f"{self.prefix}calibration:{CALIBRATION_TAG}"

    @property
    def calibration_pending(self) -> str:
        return f"{self.prefix}cal:{CALIBRATION_TAG}:pending"

    def timeline_key(self, user_id: int) -> str:
        """The sorted set holding `user_id`'s materialised home timeline."""
        return f"{self.timeline_prefix}{_tag(user_id)}"

    def following_key(self, user_id: int) -> str:
        return f"{self.prefix}fo:{_tag(user_id)}"

    def authored_key(self, author_id: int) -> str:
        return f"{self.authored_prefix}{author_id}"

    def tweet_key(self, tweet_id: int) -> str:
        return f"{self.tweet_prefix}{tweet_id}"

    def blocks_key(self, user_id: int) -> str:
        return f"{self.prefix}bk:{_tag(user_id)}"

    def blocked_by_key(self, user_id: int) -> str:
        return f"{self.prefix}bkby:{_tag(user_id)}"

    def mutes_key(self, user_id: int) -> str:
        return f"{self.prefix}mu:{_tag(user_id)}"

    def ready_key(self, partition: int, shard: str) -> str:
        return f"{self.prefix}ready:{{{shard}}}:{partition}"

    def ready_keys(self, partitions: int, shard: str) -> list[str]:
        """Every partition's ready key on one shard: they share its hash slot."""
        return [self.ready_key(p, shard) for p in range(partitions)]

    def features_key(self, entity_type: str, entity_id: str) -> str:
        return f"{self.prefix}f:{entity_type}:{entity_id}"

    def likes_key(self, tweet_id: int) -> str:
        return f"{self.likes_prefix}{tweet_id}"

    def not_interested_key(self, user_id: int) -> str:
        return f"{self.prefix}ni:{_tag(user_id)}"

    def served_key(self, user_id: int) -> str:
        return f"{self.prefix}served:{_tag(user_id)}"

    def served_by_key(self, user_id: int) -> str:
        return f"{self.prefix}servedby:{_tag(user_id)}"

    def adaptation_key(self, bucket: str) -> str:
        return f"{self.prefix}adapt:{bucket}"

    def calibration_served_key(self, user_id: int) -> str:
        return f"{self.calibration_served_prefix}{user_id}"

    def feedback_key(self, user_id: int) -> str:
        return f"{self.prefix}fb:{_tag(user_id)}"


KEYS: Final = RedisKeys(app_id_from_env())

PREFIX: Final = KEYS.prefix
TIMELINE_PREFIX: Final = KEYS.timeline_prefix
TIMELINE_PATTERN: Final = KEYS.timeline_pattern
TWEET_PREFIX: Final = KEYS.tweet_prefix
AUTHORED_PREFIX: Final = KEYS.authored_prefix
LIKES_PREFIX: Final = KEYS.likes_prefix
CALIBRATION_SERVED_PREFIX: Final = KEYS.calibration_served_prefix
CELEBRITIES: Final = KEYS.celebrities
ACTIVE: Final = KEYS.active
TRENDING: Final = KEYS.trending
CALIBRATION: Final = KEYS.calibration
CALIBRATION_PENDING: Final = KEYS.calibration_pending

timeline_key: Final = KEYS.timeline_key
following_key: Final = KEYS.following_key
authored_key: Final = KEYS.authored_key
tweet_key: Final = KEYS.tweet_key
blocks_key: Final = KEYS.blocks_key
blocked_by_key: Final = KEYS.blocked_by_key
mutes_key: Final = KEYS.mutes_key
ready_key: Final = KEYS.ready_key
ready_keys: Final = KEYS.ready_keys
features_key: Final = KEYS.features_key
likes_key: Final = KEYS.likes_key
not_interested_key: Final = KEYS.not_interested_key
served_key: Final = KEYS.served_key
served_by_key: Final = KEYS.served_by_key
adaptation_key: Final = KEYS.adaptation_key
calibration_served_key: Final = KEYS.calibration_served_key
feedback_key: Final = KEYS.feedback_key


def served_tag(bucket: str, strategy: str) -> str:
    """What `{app}:servedby` says served a tweet."""
    return f"{bucket}/{strategy}"


def parse_served_tag(tag: bytes | str) -> tuple[str, str]:
    """(bucket, strategy) of a `served_tag`."""
    bucket, strategy = _text(tag).split("/", 1)
    return bucket, strategy


def pending_member(user_id: int, tweet_id: int) -> str:
    """A `{app}:cal:{cal}:pending` member: a tweet served to the user, awaiting its outcome."""
    return f"{user_id}:{tweet_id}"


def parse_pending_member(member: bytes | str) -> tuple[int, int]:
    """(user id, tweet id) of a `pending_member`."""
    user, tweet = _text(member).split(":")
    return int(user), int(tweet)


def outcome_field(tweet_id: int, kind: str) -> str:
    """The `{app}:cal:{cal}:{user}` field that marks the user having done `kind` to the served tweet."""
    return f"{tweet_id}:{kind}"


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
