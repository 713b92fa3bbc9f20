"""Node `fanout`: the follow graph and the tweet store of each user, and hybrid fanout to Redis.

Consumes, copartitioned (partition N of each holds the same users): `graph-by-followee` (a user's
followers), `graph-by-follower` (a user's follows, blocks and mutes) and `content-by-author` (a
user's tweets). Emits: home timeline writes and the read path's data in Redis; `threshold_crossing`
notices to `system_events` when an author's follower count crosses the celebrity threshold; each
user's social-graph features (followers, following, mutual) to `real_time_features` on change.
Keeps: follow edges and counts, blocks and mutes, and tweets, in RocksDB.

A tweet is pushed to the author's and each active follower's materialised timeline, unless the
author is a celebrity, whose tweets the read path pulls. An inactive follower's timeline is
dropped instead, so that it is rebuilt complete when next read. Redis is a view of this state:
after a Redis loss each worker writes its partitions' part back (`restore_redis_view`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from faust.types import TP
from prometheus_client import Histogram

from streams.app import app, redis_client, settings, tolerating_redis_outages
from streams.features.vector import FamilyUpdate
from streams.graph.follower_graph import Crossing, FollowerGraph, Relation, celebrity_crossing
from streams.graph.tweet_store import Tweet, TweetStore
from streams.runtime.batch import BATCH_MAX, Batch, fresh_events, run_batch
from streams.runtime.batch_transport import RecordBatch, batch_topic
from streams.runtime.metrics import EVENT_DELAY_BUCKETS, REGISTRY
from streams.runtime.sink import SinkBatch
from streams.serving.connection import shard_tags
from streams.serving.keys import ready_key
from streams.serving.view import ServingReads, ServingWrites
from streams.snowflake import snowflake_ms
from streams.state.keys import Graph
from streams.state.partition_store import PartitionStore
from streams.timelines.cache import TimelineCache
from streams.timelines.rules import DAY_MS
from topologies.topics import ROUTES, batch_agent, node_state, send_family, sink_topics

NODE = "fanout"
# Follow merges this many of the followee's newest tweets into the follower's timeline (Mastodon).
FOLLOW_MERGE = 200
RELATIONS = {"block": Relation.BLOCK, "mute": Relation.MUTE}
UNDO = {"unblock": Relation.BLOCK, "unmute": Relation.MUTE}

log = logging.getLogger(__name__)
system_topic = sink_topics["system_events"]
by_follower, by_followee = (t for t, _ in ROUTES["social_graph_events"])
(by_author, _) = ROUTES["content_events"][0]
# One store per partition number serves all three topics, so warming one topic's partitions is enough.
state = node_state(NODE, [by_author.get_topic_name()], copartitioned=True)
# Redis repair and batches take turns, so a repair never writes a view older than a batch's.
view_lock = asyncio.Lock()
FANOUT_DELAY = Histogram(
    "homemixer_fanout_delay_seconds",
    "Wall-clock time from a pushed tweet's event time to its delivery into its recipients' timelines.",
    buckets=EVENT_DELAY_BUCKETS,
    registry=REGISTRY,
)


class Delivery(NamedTuple):
    tweet_id: int
    ts: int  # the tweet_create event's time, ms
    recipients: list[int]


@dataclass
class TimelineWork:
    """Timeline writes of one batch, done after the batch's view writes."""

    deliveries: list[Delivery] = field(default_factory=list)
    removals: list[tuple[list[int], list[int]]] = field(default_factory=list)
    follow_merges: list[tuple[int, int]] = field(default_factory=list)
    unfollow_removals: list[tuple[int, int]] = field(default_factory=list)
    # The same, from the followee's side: (follower, the followee's newest tweets in its store).
    followee_merges: list[tuple[int, list[int]]] = field(default_factory=list)
    followee_removals: list[tuple[int, list[int]]] = field(default_factory=list)


def timeline_cache() -> TimelineCache:
    return TimelineCache(redis_client(), settings.timeline_max)


async def fanout(records: RecordBatch) -> None:
    # The lock keeps a restore of the Redis view (`restore_redis_view`) from interleaving a batch.
    async with view_lock:
        await run_batch(state, records, fresh_events, fan_out)


async def fan_out(batch: Batch, outputs: SinkBatch) -> None:
    writes = ServingWrites(redis_client(), settings.timeline_max)
    work = TimelineWork()
    for tp, part in batch.partitions.items():
        graph = FollowerGraph(part.store)
        tweets = TweetStore(part.store, settings.timeline_max)
        graph_changed: dict[int, int] = {}  # user -> event time of the latest change
        # A batch is one partition of one topic, so a batch of tweets changes no follower list:
        # each author's is read from the store once per batch, not once per tweet.
        recipients: dict[int, list[int]] = {}
        for event in part.events:
            if tp.topic == by_followee.get_topic_name():
                on_followee_side(graph, tweets, event, writes, work, outputs)
                owner = event["dst_user_id"]
            elif tp.topic == by_follower.get_topic_name():
                on_follower_side(graph, event, writes, work)
                owner = event["src_user_id"]
            else:
                on_content(graph, tweets, event, writes, work, recipients)
                continue
            graph_changed[owner] = max(graph_changed.get(owner, 0), event["ts"])
        for user, ts in graph_changed.items():
            update = FamilyUpdate("user", str(user), "social_graph", ts, graph.social_features(user))
            send_family(outputs, update)
    await writes.execute()
    await apply_timeline_work(work)


def on_followee_side(
    graph: FollowerGraph,
    tweets: TweetStore,
    event: dict[str, Any],
    writes: ServingWrites,
    work: TimelineWork,
    outputs: SinkBatch,
) -> None:
    if event["type"] not in ("follow", "unfollow"):
        return  # blocks and mutes are kept on the follower side, where the read path finds them
    user, follower = event["dst_user_id"], event["src_user_id"]
    follow = event["type"] == "follow"
    before = graph.follower_count(user)
    if not graph.set_follower(user, follower, follow):
        return
    # A follow's two sides and the followee's tweets reach this node in any order (three topics).
    # The follower side merges the tweets Redis has; a tweet fanned out before this side knew the
    # follower was pushed to nobody, so this side merges what its store has too (and an unfollow
    # removes them, for a tweet pushed before this side knew of the unfollow).
    if not follow:
        work.followee_removals.append((follower, tweets.recent(user, settings.timeline_max)))
    elif graph.follower_count(user) < settings.celebrity_threshold:
        work.followee_merges.append((follower, tweets.recent(user, FOLLOW_MERGE)))
    crossing = celebrity_crossing(before, graph.follower_count(user), settings.celebrity_threshold)
    if crossing is None:
        return
    writes.celebrity(user, crossing is Crossing.UP)
    if crossing is Crossing.DOWN:
        # No longer pulled on read: drop the followers' timelines so rebuilds push-merge the author.
        writes.invalidate_timelines(graph.followers(user))
    outputs.add(
        system_topic, NODE, threshold_crossing(user, crossing, graph.follower_count(user), event["ts"])
    )


def on_follower_side(
    graph: FollowerGraph, event: dict[str, Any], writes: ServingWrites, work: TimelineWork
) -> None:
    user, other, kind = event["src_user_id"], event["dst_user_id"], event["type"]
    if kind in ("follow", "unfollow"):
        follow = kind == "follow"
        if graph.set_following(user, other, follow):
            writes.following(user, other, follow)
            (work.follow_merges if follow else work.unfollow_removals).append((user, other))
    elif kind in RELATIONS or kind in UNDO:
        relation = RELATIONS.get(kind) or UNDO[kind]
        if graph.set_relation(relation, user, other, kind in RELATIONS):
            writes.relation(relation, user, other, kind in RELATIONS)


def on_content(
    graph: FollowerGraph,
    tweets: TweetStore,
    event: dict[str, Any],
    writes: ServingWrites,
    work: TimelineWork,
    recipients: dict[int, list[int]],
) -> None:
    """A tweet's store and Redis writes, and whom it goes to; `recipients` memoises an author and
    their followers (what a push or a removal reaches) for the batch."""
    author, kind = event["author_id"], event["type"]
    if kind in ("tweet_create", "tweet_edit"):
        tweet = Tweet(
            tweet_id=event["tweet_id"],
            author_id=author,
            ts=event["ts"],
            text=event.get("text"),
            reply_to=event.get("reply_to"),
            quote_of=event.get("quote_of"),
            retweet_of=event.get("retweet_of"),
            media_count=event.get("media_count"),
        )
        is_new = tweets.get(tweet.tweet_id) is None
        tweets.put(tweet)
        writes.tweet(tweet)
        if kind == "tweet_create" and is_new and graph.follower_count(author) < settings.celebrity_threshold:
            work.deliveries.append(Delivery(tweet.tweet_id, tweet.ts, reached(graph, author, recipients)))
    elif kind == "tweet_delete":
        deleted = tweets.delete(event["tweet_id"])
        writes.delete_tweet(event["tweet_id"], author)
        if deleted is not None and graph.follower_count(author) < settings.celebrity_threshold:
            work.removals.append(([deleted.tweet_id], reached(graph, author, recipients)))


def reached(graph: FollowerGraph, author: int, recipients: dict[int, list[int]]) -> list[int]:
    if author not in recipients:
        recipients[author] = [author, *graph.followers(author)]
    return recipients[author]


async def apply_timeline_work(work: TimelineWork) -> None:
    store = timeline_cache()
    reads = ServingReads(redis_client())
    if work.deliveries:
        await push_to_active(store, reads, work.deliveries)
    for tweet_ids, users in work.removals:
        await store.remove(tweet_ids, users)
    if work.follow_merges or work.unfollow_removals:
        followees = sorted({f for _, f in work.follow_merges + work.unfollow_removals})
        recent = await reads.authored(followees, settings.timeline_max, None)
        for user, followee in work.follow_merges:
            await store.merge(user, recent[followee][:FOLLOW_MERGE], only_existing=True)
        for user, followee in work.unfollow_removals:
            await store.remove(recent[followee], [user])
    for user, tweet_ids in work.followee_merges:
        await store.merge(user, tweet_ids, only_existing=True)
    for user, tweet_ids in work.followee_removals:
        await store.remove(tweet_ids, [user])


async def push_to_active(store: TimelineCache, reads: ServingReads, deliveries: list[Delivery]) -> None:
    """Push each tweet to its active recipients; drop inactive recipients' timelines (rebuilt on
    read). Each tweet's fanout delay is counted once its pushes are in Redis."""
    recipients = sorted({u for _, _, users in deliveries for u in users})
    last_active = dict(zip(recipients, await reads.last_active(recipients), strict=True))
    active_ms = settings.active_days * DAY_MS
    pushes: list[tuple[int, Sequence[int]]] = []
    inactive: set[int] = set()
    for tweet_id, _, users in deliveries:
        since = snowflake_ms(tweet_id) - active_ms
        keep = [u for u in users if (last_active[u] or -1) >= since]
        inactive.update(u for u in users if (last_active[u] or -1) < since)
        pushes.append((tweet_id, keep))
    await store.fanout_many(pushes, only_existing=True)
    delivered_s = time.time()
    for delivery in deliveries:
        FANOUT_DELAY.observe(max(0.0, delivered_s - delivery.ts / 1000))
    if inactive:
        writes = ServingWrites(redis_client(), settings.timeline_max)
        writes.invalidate_timelines(inactive)
        await writes.execute()


def threshold_crossing(user: int, crossing: Crossing, followers: int, ts: int) -> dict[str, Any]:
    return {
        "type": "threshold_crossing",
        "ts": ts,
        "source": NODE,
        "reason": f"user {user} now has {followers} followers: "
        + (
            "a celebrity, pulled on read"
            if crossing is Crossing.UP
            else "no longer a celebrity, pushed again"
        ),
        "attributes": {
            "user_id": str(user),
            "direction": crossing.value,
            "followers": str(followers),
            "threshold": str(settings.celebrity_threshold),
        },
    }


async def restore_partition(partition: int, store: PartitionStore) -> None:
    """Write one partition's part of the Redis view from RocksDB, then mark it ready on every shard."""
    graph = FollowerGraph(store)
    tweets = TweetStore(store, settings.timeline_max)
    writes = ServingWrites(redis_client(), settings.timeline_max)
    for user, followee in graph.users_with(Graph.FOLLOWING):
        writes.following(user, followee, True)
    for relation in Relation:
        for user, other in graph.users_with(relation.value):
            writes.relation(relation, user, other, True)
    for user in graph.celebrities(settings.celebrity_threshold):
        writes.celebrity(user, True)
    for tweet in tweets.all_tweets():
        writes.tweet(tweet)
    await writes.execute()
    # Only once the part is in: a cluster pipeline runs on the masters in parallel, so a ready key
    # sent with the part could be read before the keys it vouches for.
    marks = ServingWrites(redis_client(), settings.timeline_max)
    marks.ready(partition, await shard_tags(redis_client()))
    await marks.execute()


async def restore_redis_view() -> None:
    """Mark this worker's partitions ready in Redis, writing their view back first if Redis lost it."""
    redis = redis_client()
    assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == by_author.get_topic_name()}
    for partition in sorted(assigned):
        # On a cluster, a master lost and back empty is missing its ready key of the partition.
        shards = await shard_tags(redis)
        if await redis.exists(*(ready_key(partition, shard) for shard in shards)) == len(shards):
            continue
        tp = TP(by_author.get_topic_name(), partition)
        # The view lock keeps the node's batches out; the partition's lock, the store restorer
        # (topologies.topics).
        async with view_lock, state.lock(tp):
            started = time.monotonic()
            await state.open([tp])
            await restore_partition(partition, state.store(tp))
            app.log.info(
                "restored the Redis view of partition %d in %.2f s", partition, time.monotonic() - started
            )


batch_agent(
    batch_topic(
        app, *(t.get_topic_name() for t in (by_followee, by_follower, by_author)), max_records=BATCH_MAX
    ),
    NODE,
    fanout,
)
app.timer(1.0)(tolerating_redis_outages(restore_redis_view))
