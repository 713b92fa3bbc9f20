"""What the read path needs, kept in Redis by the nodes that own it, and read back in few round trips.

`ServingWrites` collects one batch's writes into a single pipeline; every write is idempotent
(set and sorted-set membership, hash fields), so a batch replayed after a crash leaves Redis as
it was. `ServingReads` answers the read path's questions about one user.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.typing import EncodableT, FieldT

from streams.graph.follower_graph import Relation
from streams.graph.tweet_store import Tweet
from streams.mixer.features import pack_stored, stored_layout
from streams.serving.cluster_latest import latest_page_in_round_trips
from streams.serving.connection import SINGLE_SHARD, is_cluster, mget, queue_mset, shard_tags
from streams.serving.keys import (
    ACTIVE,
    AUTHORED_PREFIX,
    CELEBRITIES,
    LIKES_PREFIX,
    READ_SLACK,
    TRENDING,
    TWEET_PREFIX,
    authored_key,
    blocked_by_key,
    blocks_key,
    features_key,
    following_key,
    likes_key,
    mutes_key,
    not_interested_key,
    ready_key,
    ready_keys,
    timeline_key,
    tweet_key,
)
from streams.serving.latest import LatestPage, Rebuild
from streams.serving.scripts import Script
from streams.serving.shared_connection import SharedConnection

# Trending candidates kept for the out-of-network source: far more than a page needs.
TRENDING_KEEP = 1000


def float_fields(raw: Mapping[Any, Any]) -> dict[str, float]:
    """A Redis hash of numbers, as HGETALL returns it (bytes), as floats by field name."""
    return {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}


class ServingWrites:
    def __init__(self, redis: Redis, keep_per_author: int) -> None:
        self._pipe = redis.pipeline(transaction=False)
        self._keep = keep_per_author
        self._pending = 0
        # Features and like counts are replaced whole: a batch's go out as one MSET, not a SET
        # each (the client's per-command cost was most of a node's Redis time).
        self._replaced: dict[str, bytes] = {}

    def _count(self, n: int = 1) -> None:
        self._pending += n

    def following(self, user: int, followee: int, present: bool) -> None:
        key = following_key(user)
        self._pipe.sadd(key, followee) if present else self._pipe.srem(key, followee)
        self._count()

    def relation(self, relation: Relation, user: int, other: int, present: bool) -> None:
        if relation is Relation.BLOCK:
            pairs = [(blocks_key(user), other), (blocked_by_key(other), user)]
        else:
            pairs = [(mutes_key(user), other)]
        for key, member in pairs:
            self._pipe.sadd(key, member) if present else self._pipe.srem(key, member)
        self._count(len(pairs))

    def celebrity(self, user: int, present: bool) -> None:
        self._pipe.sadd(CELEBRITIES, user) if present else self._pipe.srem(CELEBRITIES, user)
        self._count()

    def tweet(self, tweet: Tweet) -> None:
        fields: dict[FieldT, EncodableT] = {k: v for k, v in vars(tweet).items() if v is not None}
        self._pipe.hset(tweet_key(tweet.tweet_id), mapping=fields)
        self._pipe.zadd(authored_key(tweet.author_id), {str(tweet.tweet_id): tweet.tweet_id})
        self._pipe.zremrangebyrank(authored_key(tweet.author_id), 0, -(self._keep + 1))
        self._count(3)

    def delete_tweet(self, tweet_id: int, author_id: int) -> None:
        self._pipe.delete(tweet_key(tweet_id))
        self._pipe.zrem(authored_key(author_id), str(tweet_id))
        self._count(2)

    def activity(self, last_active: Mapping[int, int]) -> None:
        if last_active:
            self._pipe.zadd(ACTIVE, {str(u): ts for u, ts in last_active.items()}, gt=True)
            self._count()

    def invalidate_timelines(self, users: Iterable[int]) -> None:
        """Drop materialised timelines so that the next read rebuilds them complete."""
        keys = [timeline_key(u) for u in users]
        if keys:
            self._pipe.delete(*keys)
            self._count()

    def features(self, entity_type: str, entity_id: str, values: Mapping[str, float]) -> None:
        """The scorer's view of an entity (a few decayed counts and their time), replaced whole."""
        if values:
            self._replaced[features_key(entity_type, entity_id)] = pack_stored(
                values, stored_layout(entity_type)
            )

    def likes(self, tweet_id: int, count: int) -> None:
        """The tweet's like count as the page shows it (`like_count`), replaced whole."""
        self._replaced[likes_key(tweet_id)] = str(count).encode()

    def trending(self, tweet_id: int, boost: float) -> None:
        self._pipe.zadd(TRENDING, {str(tweet_id): boost})
        self._pipe.zremrangebyrank(TRENDING, 0, -(TRENDING_KEEP + 1))
        self._count(2)

    def not_interested(self, user: int, author: int) -> None:
        self._pipe.sadd(not_interested_key(user), author)
        self._count()

    def ready(self, partition: int, shards: Sequence[str]) -> None:
        """The partition's part is in: its ready key on each shard (`connection.shard_tags`)."""
        for shard in shards:
            self._pipe.set(ready_key(partition, shard), 1)
        self._count(len(shards))

    async def execute(self) -> None:
        if self._replaced:
            queue_mset(self._pipe, self._replaced)
            self._replaced = {}
            self._count()
        if self._pending:
            await self._pipe.execute()
            self._pending = 0


@dataclass(frozen=True)
class UserContext:
    following: set[int]
    celebrities: set[int]
    hidden: set[int]
    last_active_ms: int | None
    # Authors the user said `not_interested` in: only ranked reads filter them.
    not_interested: set[int]


HGETALL_MANY = Script("streams.serving", "hgetall_many.lua")
LATEST_PAGE = Script("streams.serving", "latest_page.lua")
HGET_MANY = Script("streams.serving", "hget_many.lua")


def _queue_user_context(pipe: Pipeline, user: int) -> None:
    pipe.smembers(following_key(user))
    if isinstance(pipe, ClusterPipeline):
        # The celebrity set has a slot of its own, so a cluster intersects here (`_user_context`).
        pipe.smembers(CELEBRITIES)
    else:
        pipe.sinter([following_key(user), CELEBRITIES])
    # As a raw command: redis-py refuses `sunion` in a cluster pipeline, though these three share
    # the user's hash slot (keys.py).
    pipe.execute_command("SUNION", blocks_key(user), blocked_by_key(user), mutes_key(user))
    pipe.zscore(ACTIVE, str(user))
    pipe.smembers(not_interested_key(user))


def _user_context(replies: Sequence[Any]) -> UserContext:
    following, celebrities, hidden, active, not_interested = replies
    followed = {int(x) for x in following}
    return UserContext(
        following=followed,
        celebrities={int(x) for x in celebrities} & followed,
        hidden={int(x) for x in hidden},
        last_active_ms=None if active is None else int(active),
        not_interested={int(x) for x in not_interested},
    )


@dataclass(frozen=True)
class OpenedRead:
    ready: bool
    context: UserContext
    # The home timeline is in Redis (it may still need a rebuild if the user was inactive).
    materialised: bool


class ServingReads:
    """The read path's Redis reads. Latest pages go over `shared` when given (one Redis only),
    the connection a process's latest reads share (`shared_connection`)."""

    def __init__(self, redis: Redis, shared: SharedConnection | None = None) -> None:
        self.redis = redis
        self.shared = shared

    async def following_many(self, users: Sequence[int]) -> dict[int, set[int]]:
        """Whom each user follows, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for user in users:
            pipe.smembers(following_key(user))
        replies = await pipe.execute()
        return {user: {int(x) for x in followed} for user, followed in zip(users, replies, strict=True)}

    async def open_read(self, user: int, now_ms: int, partitions: int) -> OpenedRead:
        """What a timeline read needs first, in one round trip: whether the Redis view is ready
        (every partition's part is in; not while it is restored after a Redis loss), the user's
        context as it was before this read, and whether the home timeline is materialised. Marks
        the user active, after reading when they last were."""
        shards = await shard_tags(self.redis)
        pipe = self.redis.pipeline(transaction=False)
        for shard in shards:  # one EXISTS a shard: its ready keys share a hash slot
            pipe.exists(*ready_keys(partitions, shard))
        _queue_user_context(pipe, user)
        pipe.exists(timeline_key(user))
        pipe.zadd(ACTIVE, {str(user): now_ms}, gt=True)
        replies = await pipe.execute()
        present, context = replies[: len(shards)], replies[len(shards) : -2]
        ready = sum(present) == partitions * len(shards)
        return OpenedRead(ready, _user_context(context), bool(replies[-2]))

    async def user_context(self, user: int) -> UserContext:
        """The user's context, as a read sees it, without marking the user active."""
        pipe = self.redis.pipeline(transaction=False)
        _queue_user_context(pipe, user)
        return _user_context(await pipe.execute())

    async def known_users(self) -> list[int]:
        """Every user the pipeline has seen do anything (the activity index), in id order."""
        members: list[Any] = await self.redis.zrange(ACTIVE, 0, -1)
        return sorted(int(u) for u in members)

    async def latest_page(
        self,
        user: int,
        now_ms: int,
        active_since_ms: int,
        partitions: int,
        limit: int,
        want: int,
        max_id: int | None,
    ) -> LatestPage | Rebuild | None:
        """A latest page of at most `limit` from the newest `want` candidates, in one round trip
        (`latest_page.lua`; three on a cluster): None while the Redis view is not ready. Marks the
        user active, after reading whether they were."""
        if is_cluster(self.redis):
            return await latest_page_in_round_trips(
                self, user, now_ms, active_since_ms, partitions, limit, want, max_id
            )
        keys = [
            ACTIVE,
            CELEBRITIES,
            following_key(user),
            blocks_key(user),
            blocked_by_key(user),
            mutes_key(user),
            timeline_key(user),
            *ready_keys(partitions, SINGLE_SHARD),
        ]
        args = [user, now_ms, active_since_ms, limit, want, "" if max_id is None else max_id, READ_SLACK]
        args += [AUTHORED_PREFIX, TWEET_PREFIX, LIKES_PREFIX]
        reply = await LATEST_PAGE(self.shared or self.redis, keys, args)
        if reply[0] == 0:
            return None
        if reply[0] == 1:
            return Rebuild({int(x) for x in reply[1]}, {int(x) for x in reply[2]})
        _, flat, more = reply
        rows = [
            (int(flat[i]), int(flat[i + 1]), flat[i + 2] == 1, flat[i + 3].decode(), int(flat[i + 4] or 0))
            for i in range(0, len(flat), 5)
        ]
        return LatestPage(rows, bool(more))

    async def last_active(self, users: Sequence[int]) -> list[int | None]:
        if not users:
            return []
        scores: list[float | None] = await self.redis.zmscore(ACTIVE, [str(u) for u in users])
        return [None if s is None else int(s) for s in scores]

    async def fields(self, pairs: Sequence[tuple[str, str]]) -> list[bytes | None]:
        """The value of each (hash, field) pair, in one command."""
        if not pairs:
            return []
        values: list[bytes | None] = [None] * len(pairs)
        keys = [k for k, _ in pairs]
        for positions, found in await HGET_MANY.per_slot(
            self.redis, keys, lambda at: [pairs[i][1] for i in at]
        ):
            for i, value in zip(positions, found, strict=True):
                values[i] = value
        return values

    async def authored(self, authors: Sequence[int], limit: int, max_id: int | None) -> dict[int, list[int]]:
        """Each author's newest tweet ids below `max_id`, newest first, at most `limit` each."""
        pipe = self.redis.pipeline(transaction=False)
        for author in authors:
            top = "+inf" if max_id is None else max_id
            pipe.zrevrangebyscore(authored_key(author), top, "-inf", start=0, num=limit + READ_SLACK)
        results = await pipe.execute()
        out: dict[int, list[int]] = {}
        for author, raw in zip(authors, results, strict=True):
            ids = sorted((int(x) for x in raw), reverse=True)
            out[author] = [t for t in ids if max_id is None or t < max_id][:limit]
        return out

    async def like_counts(self, tweet_ids: Sequence[int]) -> dict[int, int]:
        """Each tweet's like count (0 for one nobody has liked), in one command."""
        if not tweet_ids:
            return {}
        values: list[bytes | str | None] = await mget(self.redis, [likes_key(t) for t in tweet_ids])
        return {t: 0 if v is None else int(v) for t, v in zip(tweet_ids, values, strict=True)}

    async def tweets(self, tweet_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Hydrated tweets by id; a deleted (or unknown) tweet is absent."""
        ids = list(dict.fromkeys(tweet_ids))
        if not ids:
            return {}
        # One script call: a pipeline packs and parses one command per tweet in Python.
        keys = [tweet_key(tweet_id) for tweet_id in ids]
        found: dict[int, dict[str, Any]] = {}
        for positions, rows in await HGETALL_MANY.per_slot(self.redis, keys, lambda _: ()):
            for i, row in zip(positions, rows, strict=True):
                if row:
                    fields = zip(row[::2], row[1::2], strict=True)
                    found[ids[i]] = {k.decode(): v.decode() for k, v in fields}
        return found
