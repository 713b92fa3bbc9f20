"""Every Redis key homemixer uses, and every member, field or value made of parts: a search for
`hm:` elsewhere finds nothing.

Redis holds what the read path needs, so that any worker can serve any user's timeline without
asking the worker that owns the user's partition. RocksDB state is the source of truth: after a
Redis loss each worker writes its partitions' part of this back (`ready` says when), and timelines
are rebuilt on read.

| key | type | what (written by) |
| --- | --- | --- |
| `hm:tl:{user}` | zset, score = member = tweet id | home timeline + sentinel "0" (fanout, reads) |
| `hm:fo:{user}` | set of user ids | whom the user follows (graph) |
| `hm:celebs` | set of user ids | authors at or over the celebrity threshold (graph) |
| `hm:au:{author}` | zset, score = member = tweet id | the author's newest tweets (fanout) |
| `hm:tw:{tweet}` | hash | a tweet's fields for hydration; gone once deleted (fanout) |
| `hm:bk:{user}`, `hm:bkby:{user}` | set of user ids | whom the user blocked, who blocked the user (graph) |
| `hm:mu:{user}` | set of user ids | whom the user muted (graph) |
| `hm:active` | zset, score = ms | each user's latest activity: any event, or a read (parser, reads) |
| `hm:ready:{partition}` | string | that partition's part of the above is in Redis (each worker) |
| `hm:f:{entity}` | string | packed features for scoring, e.g. `hm:f:tweet:9` (aggregator, booster) |
| `hm:trending` | zset, score = boost | tweets that real-time signals point at (signal booster) |
| `hm:ni:{user}` | set of user ids | authors the user said `not_interested` in (aggregator) |
| `hm:served:{user}` | zset, score = ms | the newest 2,000 tweets served to the user, ranked (read path) |
| `hm:servedby:{user}` | hash | `hm:served` tweet -> `bucket/strategy`, until credited (reads, aggregator) |
| `hm:adapt:{bucket}` | hash | the bucket's learning state and engagement counts (read path, aggregator) |
| `hm:cal:{user}` | hash | tweet -> raw predictions as served; `{tweet}:{kind}`: done (reads, aggregator) |
| `hm:cal:pending` | zset, score = ms | `{user}:{tweet}` served, awaiting an outcome (read path; fitter) |
| `hm:calibration` | hash | the scorer's Platt fit per segment and kind (fitter) |
| `hm:fb:{user}` | hash | viewer feedback: `{author}`, `viewer` -> "engaged expected ts" (fitter) |

Each format made of parts has one build function here, and one parse function where Python reads
it back. A script that must build or parse one from what it reads in Redis does so itself, and
only these do: `take_matured.lua` parses `{user}:{tweet}` and builds `{tweet}:{kind}`,
`hydrate.lua` and `latest_page.lua` build their candidates' keys from prefixes (the scripts say
why), `latest_page.lua` skips the timeline sentinel, and `fanout.lua`
and `merge.lua` write the timeline sentinel.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "hm:"
TIMELINE_PREFIX: Final = "hm:tl:"
CELEBRITIES: Final = "hm:celebs"
ACTIVE: Final = "hm:active"


# Extra rows per read of a sorted set scored by tweet id (`hm:tl`, `hm:au`): scores are doubles, so
# ids next to `max_id` can share its score. A page that starts at `max_id` (the previous page's
# last id) always skips that id itself, and rarely a few more; the readers filter them out.
READ_SLACK: Final = 8


def timeline_key(user_id: int) -> str:
    """The sorted set holding `user_id`'s materialised home timeline."""
    return f"{TIMELINE_PREFIX}{user_id}"


def following_key(user_id: int) -> str:
    return f"hm:fo:{user_id}"


AUTHORED_PREFIX: Final = "hm:au:"


def authored_key(author_id: int) -> str:
    return f"{AUTHORED_PREFIX}{author_id}"


TWEET_PREFIX: Final = "hm:tw:"


def tweet_key(tweet_id: int) -> str:
    return f"{TWEET_PREFIX}{tweet_id}"


def blocks_key(user_id: int) -> str:
    return f"hm:bk:{user_id}"


def blocked_by_key(user_id: int) -> str:
    return f"hm:bkby:{user_id}"


def mutes_key(user_id: int) -> str:
    return f"hm:mu:{user_id}"


def ready_key(partition: int) -> str:
    return f"hm:ready:{partition}"


TRENDING: Final = "hm:trending"


def features_key(entity_type: str, entity_id: str) -> str:
    return f"hm:f:{entity_type}:{entity_id}"


def not_interested_key(user_id: int) -> str:
    return f"hm:ni:{user_id}"


def served_key(user_id: int) -> str:
    return f"hm:served:{user_id}"


def served_by_key(user_id: int) -> str:
    return f"hm:servedby:{user_id}"


def served_tag(bucket: str, strategy: str) -> str:
    """What `hm:servedby` says served a tweet."""
    return f"{bucket}/{strategy}"


def parse_served_tag(tag: bytes | str) -> tuple[str, str]:
    """(bucket, strategy) of a `served_tag`."""
    bucket, strategy = _text(tag).split("/", 1)
    return bucket, strategy


def adaptation_key(bucket: str) -> str:
    return f"hm:adapt:{bucket}"


CALIBRATION: Final = "hm:calibration"
CALIBRATION_PENDING: Final = "hm:cal:pending"
CALIBRATION_SERVED_PREFIX: Final = "hm:cal:"


def calibration_served_key(user_id: int) -> str:
    return f"{CALIBRATION_SERVED_PREFIX}{user_id}"


def pending_member(user_id: int, tweet_id: int) -> str:
    """A `hm:cal:pending` member: a tweet served to the user, awaiting its outcome."""
    return f"{user_id}:{tweet_id}"


def parse_pending_member(member: bytes | str) -> tuple[int, int]:
    """(user id, tweet id) of a `pending_member`."""
    user, tweet = _text(member).split(":")
    return int(user), int(tweet)


def outcome_field(tweet_id: int, kind: str) -> str:
    """The `hm:cal:{user}` field that marks the user having done `kind` to the served tweet."""
    return f"{tweet_id}:{kind}"


def feedback_key(user_id: int) -> str:
    return f"hm:fb:{user_id}"


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
