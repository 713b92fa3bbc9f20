"""Home timelines in Redis: batched fanout, trims, removals, rebuilds and reads.

Keys come from `streams.serving.keys`, the one module that names Redis keys. A timeline, after
Mastodon's FeedManager (`feed:home:<id>`):

| key | type | member | score | what |
| --- | --- | --- | --- | --- |
| `{app}:tl:{user_id}` | sorted set | tweet id, decimal | tweet id | materialised home timeline |
|                   |            | `"0"` (sentinel)  | 0        | "materialised", even if empty |

Existence is meaning. A timeline key exists exactly when the timeline is materialised: fanout only
writes into timelines that exist (a missing one is "not materialised; rebuild it on read"), and a
read of a missing key answers None so the caller rebuilds. A Redis sorted set cannot be empty, so
every write that creates a timeline also adds the sentinel `"0"`: a user whose rebuild finds
nothing to push (no followees, or only celebrities, whose tweets are pulled at read time) keeps an
empty but materialised timeline instead of being rebuilt on every read. Tweet ids are positive
Snowflakes, so the sentinel never collides with a tweet; it sorts first (lowest score) and the
trim and the reads step around it.

Scores are IEEE doubles, exact only up to 2**53, and Snowflake ids are larger: ids less than a few
hundred apart (the same worker in the same millisecond) can share a score. Redis orders equal
scores by member bytes, which for decimal strings of the same length is numeric order, so ranks
(trim, newest first) stay exact; the read path pages with an inclusive score bound and drops the
ids at or above `max_id` itself, so a shared score never hides or repeats a tweet. (The one place
lengths differ within a shared score is around 10**18, ids minted in 2016: ignored.)

All keys sit in one Redis; a script may touch up to `LUA_CHUNK` of them, which Redis Cluster would
refuse (keys in many slots). Sharding timelines would mean grouping keys by slot first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final, TypeVar, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import AbstractConnection
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streams.serving.connection import is_cluster, same_slot_groups
from streams.serving.keys import READ_SLACK, TIMELINE_PATTERN, timeline_key
from streams.serving.scripts import Script, execute
from streams.serving.sweep import SWEEP_BATCH, unlink_matching

# Packs a command into RESP bytes in C; None without hiredis, when redis-py's own packer does the job.
HiredisPack = Callable[[tuple[str | bytes | int, ...]], bytes]
_hiredis_pack: HiredisPack | None
try:
    from hiredis import pack_command

    _hiredis_pack = cast(HiredisPack, pack_command)  # its stub types the tuple as a 1-tuple
except ImportError:  # redis[hiredis] is a dependency; this is for a bare redis-py
    _hiredis_pack = None

# Marks a timeline as materialised even when it holds no tweet (see the module docstring).
SENTINEL: Final = "0"

# Deliveries (tweet into timeline) per fanout script call, and keys per remove call. FIELD_NOTES:
# one Lua call per 1,000 keys reached 192k inserts/s against 64k for pipelined
# ZADD+ZREMRANGEBYRANK; larger calls only block Redis for longer (1,000 take 1-7 ms here).
LUA_CHUNK: Final = 1000
# Tweet ids per ZADD or ZREM inside a script: Lua's unpack() fails past about 8,000 values.
UNPACK_IDS: Final = 1000
# Every write is idempotent, so a batch cut short by a lost connection is simply sent again, once.
CONNECTION_RETRIES: Final = 1
# Each script's KEYS and ARGV are said at the top of its file.
FANOUT: Final = Script("streams.timelines", "fanout.lua")
REMOVE: Final = Script("streams.timelines", "remove.lua")
MERGE: Final = Script("streams.timelines", "merge.lua")

# A script and its EVALSHA arguments after the sha: number of keys, keys, then ARGV.
Call = tuple[Script, list[Any]]


class TimelineCache:
    """Writes and reads of materialised home timelines (`{app}:tl:{user_id}`).

    Every write is idempotent: ZADD of the same member with the same score changes nothing and
    ZREM of an absent member is a no-op, so a replayed event (or a retried batch) never
    duplicates or loses an entry. Timelines keep the newest `max_entries` tweets by id.
    """

    def __init__(self, redis: Redis, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self._redis = redis
        self.max_entries = max_entries
        self._loaded = False

    async def fanout(self, tweet_id: int, user_ids: Sequence[int], *, only_existing: bool = True) -> int:
        """Insert one tweet into the timelines of `user_ids`; returns how many timelines hold it.

        With `only_existing` (the default) a missing timeline is skipped: it is not materialised
        and will be rebuilt, with this tweet, when next read. The author's own timeline is written
        with `only_existing=False`, which creates it when missing.
        """
        return await self.fanout_many([(tweet_id, user_ids)], only_existing=only_existing)

    async def fanout_many(
        self, items: Sequence[tuple[int, Sequence[int]]], *, only_existing: bool = True
    ) -> int:
        """`fanout` for several tweets at once: one round trip, as few script calls as possible.

        A follower who gets several of these tweets gets them in one ZADD, not one per tweet
        (followers of several authors in one batch are common, and each ZADD into a large timeline
        costs Redis about a microsecond of cache misses); a script call carries up to `LUA_CHUNK`
        deliveries. Returns the number of (tweet, timeline) deliveries, each counted again when a
        user id is repeated.
        """

        def calls() -> Iterator[Call]:
            for groups in self._per_slot(_group_by_tweets(items)):
                for keys, args in self._fanout_chunks(groups, only_existing):
                    yield FANOUT, [len(keys), *keys, *args]

        return sum(await self._run(calls))

    def _fanout_chunks(
        self, groups: Iterable[tuple[Sequence[int], Sequence[int]]], only_existing: bool
    ) -> Iterator[tuple[list[str], list[int]]]:
        """Script arguments: (keys, ARGV) of at most about `LUA_CHUNK` deliveries each."""
        head = [self.max_entries, 1 if only_existing else 0]
        keys: list[str] = []
        args = list(head)
        load = 0
        for tweet_ids, user_ids in groups:
            per_user = len(tweet_ids)
            start, total = 0, len(user_ids)
            while start < total:
                if load and load + per_user > LUA_CHUNK:
                    yield keys, args
                    keys, args, load = [], list(head), 0
                part = user_ids[start : start + max(1, (LUA_CHUNK - load) // per_user)]
                keys += [timeline_key(user_id) for user_id in part]
                args.append(per_user)
                args += tweet_ids
                args.append(len(part))
                load += per_user * len(part)
                start += len(part)
        if keys:
            yield keys, args

    async def remove(self, tweet_ids: Sequence[int], user_ids: Sequence[int]) -> int:
        """Remove these tweets from these timelines (unfollow, delete); returns entries removed.

        Missing timelines stay missing, and a timeline emptied of tweets stays materialised.
        """
        ids = sorted(set(tweet_ids))
        if not ids or not user_ids:
            return 0
        _check_tweet_id(ids[0])
        keys = [timeline_key(user_id) for user_id in user_ids]

        def calls() -> Iterator[Call]:
            for positions in same_slot_groups(self._redis, keys):
                for key_part in _chunks([keys[i] for i in positions], LUA_CHUNK):
                    for id_part in _chunks(ids, UNPACK_IDS):
                        yield REMOVE, [len(key_part), *key_part, *id_part]

        return sum(await self._run(calls))

    async def replace(self, user_id: int, tweet_ids: Sequence[int]) -> None:
        """Set a timeline to exactly these tweets (the newest `max_entries`), atomically: a rebuild.

        The result is materialised even when `tweet_ids` is empty.
        """
        ids = _newest(tweet_ids, self.max_entries)
        key = timeline_key(user_id)
        pipe: Pipeline
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.zadd(key, {SENTINEL: 0, **{str(tweet_id): tweet_id for tweet_id in ids}})
            await pipe.execute()

    async def merge(self, user_id: int, tweet_ids: Sequence[int], *, only_existing: bool = False) -> int:
        """Add many tweets to one timeline and trim it (follow merges the followee's recent tweets).

        Creates the timeline when missing unless `only_existing`; returns the entries added, or -1
        when `only_existing` found no timeline. Merging no tweets does nothing (and creates
        nothing). Note that a timeline created here holds only these tweets, and being
        materialised it will not be rebuilt.
        """
        ids = _newest(tweet_ids, self.max_entries)
        if not ids:
            return 0
        pairs = [value for tweet_id in ids for value in (tweet_id, tweet_id)]
        call: Call = (MERGE, [1, timeline_key(user_id), self.max_entries, int(only_existing), *pairs])
        (added,) = await self._run(lambda: [call])
        return added

    async def read(self, user_id: int, limit: int, max_id: int | None = None) -> list[int] | None:
        """Up to `limit` tweet ids, newest first, all below `max_id` when given.

        None when the timeline is not materialised (the caller rebuilds it); [] when it is
        materialised but holds nothing below `max_id`.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        key = timeline_key(user_id)
        # Inclusive, then filtered here: ids just below max_id may share its score (module doc).
        upper = "+inf" if max_id is None else str(max_id)
        want = limit + READ_SLACK
        out: list[int] = []
        offset = 0
        while True:
            # The lower bound 0 takes in the sentinel, so an existing timeline never answers [].
            rows: list[Any] = await self._redis.zrevrangebyscore(key, upper, 0, start=offset, num=want)
            if offset == 0 and not rows:
                return None
            for row in rows:
                tweet_id = int(row)
                if tweet_id > 0 and (max_id is None or tweet_id < max_id):
                    out.append(tweet_id)
            if len(out) >= limit or len(rows) < want:
                return out[:limit]
            offset += want

    async def clear(self, user_ids: Sequence[int]) -> int:
        """Drop these timelines (each is rebuilt when next read); returns how many existed."""
        dropped = 0
        for part in _chunks(user_ids, SWEEP_BATCH):
            dropped += int(await self._redis.unlink(*(timeline_key(u) for u in part)))
        return dropped

    async def clear_all(self, progress: Callable[[int], None]) -> int:
        """Drop every timeline; `progress` hears the running total."""
        return await unlink_matching(self._redis, TIMELINE_PATTERN, progress)

    async def exists(self, user_id: int) -> bool:
        """Whether the timeline is materialised."""
        return bool(await self._redis.exists(timeline_key(user_id)))

    async def _run(self, make_calls: Callable[[], Iterable[Call]]) -> list[int]:
        """Run script calls in order, streamed over one connection; their answers, in order.

        Scripts are loaded once; when Redis answers NOSCRIPT (after a restart or a SCRIPT FLUSH)
        they are loaded again and every call is repeated, which is safe because every script is
        idempotent. So is a repeat after a lost connection.
        """
        if is_cluster(self._redis):
            return await self._run_on_cluster(make_calls())
        if not self._loaded:
            await self._load_scripts()
        for attempt in range(CONNECTION_RETRIES + 1):
            try:
                return await self._stream(make_calls())
            except NoScriptError:
                await self._load_scripts()
            except (RedisConnectionError, RedisTimeoutError):
                if attempt == CONNECTION_RETRIES:
                    raise
        return await self._stream(make_calls())

    async def _stream(self, calls: Iterable[Call]) -> list[int]:
        """Send every call, then read every answer: one round trip however many calls.

        Redis runs the first calls while later ones are still being packed and sent, so client
        and server work side by side. Commands are packed by hiredis (0.3 µs per key, against 3 µs
        for redis-py's pure-Python packer, which was half of the fanout's cost), so this goes
        around redis-py's pipeline, straight to a connection of the client's pool.
        """
        pool = self._redis.connection_pool
        # redis-py's deprecation decorator on get_connection drops its types.
        conn: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            sent = 0
            for script, args in calls:
                await conn.send_packed_command(
                    _pack(conn, b"EVALSHA", script.sha, *args), check_health=sent == 0
                )
                sent += 1
            results: list[int] = []
            error: ResponseError | None = None
            for _ in range(sent):
                try:
                    results.append(int(await conn.read_response()))
                except ResponseError as exc:  # one call failed; the answers after it still come
                    error = error or exc
            if error is not None:
                raise error
            return results
        except ResponseError:
            raise
        except BaseException:
            # Connection lost, or cancelled half-way: what is still on the wire is unknown.
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    async def _run_on_cluster(self, calls: Iterable[Call]) -> list[int]:
        """`_run` on a Redis Cluster: one cluster pipeline, whose client sends each call to the
        master of its keys' slot (every call's keys share one: `_per_slot`) and follows MOVED."""
        pipe = self._redis.pipeline(transaction=False)
        for script, (key_count, *rest) in calls:
            script.queue(pipe, rest[:key_count], rest[key_count:])
        return [int(answer) for answer in await execute(pipe)]

    def _per_slot(
        self, groups: list[tuple[Sequence[int], Sequence[int]]]
    ) -> Iterator[list[tuple[Sequence[int], Sequence[int]]]]:
        """The (tweet ids, user ids) groups as they are on one Redis; on a cluster, once per hash
        slot of the users' timelines, each group cut down to that slot's users."""
        if not is_cluster(self._redis):
            yield groups
            return
        by_slot: defaultdict[int, list[tuple[Sequence[int], Sequence[int]]]] = defaultdict(list)
        for tweet_ids, user_ids in groups:
            users_of: defaultdict[int, list[int]] = defaultdict(list)
            for user_id in user_ids:
                users_of[key_slot(timeline_key(user_id).encode())].append(user_id)
            for slot, users in users_of.items():
                by_slot[slot].append((tweet_ids, users))
        yield from by_slot.values()

    async def _load_scripts(self) -> None:
        for script in (FANOUT, REMOVE, MERGE):
            await script.load(self._redis)
        self._loaded = True


def _group_by_tweets(items: Sequence[tuple[int, Sequence[int]]]) -> list[tuple[Sequence[int], Sequence[int]]]:
    """(tweet ids, user ids) groups: every user of a group gets exactly that group's tweets.

    Turns "each tweet to its followers" into "each set of tweets to the followers who get that
    set", so a follower of several authors in the batch gets one ZADD, not one per tweet.
    """
    for tweet_id, _ in items:
        _check_tweet_id(tweet_id)
    if len(items) == 1:
        tweet_id, user_ids = items[0]
        return [((tweet_id,), user_ids)]
    tweets_of: defaultdict[int, list[int]] = defaultdict(list)
    for tweet_id, user_ids in items:
        for user_id in user_ids:
            tweets_of[user_id].append(tweet_id)
    users_of: defaultdict[tuple[int, ...], list[int]] = defaultdict(list)
    for user_id, tweet_ids in tweets_of.items():
        if len(tweet_ids) <= UNPACK_IDS:
            users_of[tuple(tweet_ids)].append(user_id)
        else:
            for part in _chunks(tweet_ids, UNPACK_IDS):
                users_of[tuple(part)].append(user_id)
    return list(users_of.items())


def _check_tweet_id(tweet_id: int) -> None:
    if tweet_id <= 0:
        raise ValueError(f"tweet ids are positive Snowflakes, got {tweet_id}")


def _newest(tweet_ids: Iterable[int], max_entries: int) -> list[int]:
    """The newest `max_entries` distinct ids, newest first: all that a trimmed timeline can keep."""
    ids = sorted(set(tweet_ids), reverse=True)[:max_entries]
    for tweet_id in ids[-1:]:
        _check_tweet_id(tweet_id)
    return ids


def _pack(conn: AbstractConnection, *args: str | bytes | int) -> bytes | list[bytes]:
    if _hiredis_pack is None:
        return conn.pack_command(*args)
    return _hiredis_pack(args)


T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
