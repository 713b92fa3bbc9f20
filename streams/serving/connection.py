"""The one place a Redis client is made: one Redis, or a Redis Cluster (`HOMEMIXER_REDIS_CLUSTER`)
reached through any of its nodes.

Callers type the client as `redis.asyncio.Redis`: `RedisCluster` answers the same commands, routes
each by its key's hash slot, and splits DEL, UNLINK, EXISTS, MGET and MSET over slots itself. What
differs is handled where it matters: a script's keys must share one slot (`keys.py` hash tags,
`same_slot_groups`), and a cluster pipeline runs scripts by EVAL (`scripts.py`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.crc import key_slot
from redis.exceptions import ClusterError, ConnectionError, TimeoutError

# What a command raises while Redis, or the master of its slot, is unreachable: the caller waits
# it out (an upkeep tick, a 503 with Retry-After) instead of crashing. `ClusterError` covers the
# cluster's CLUSTERDOWN, answered by the masters still up once the lost one's slots are down.
REDIS_UNAVAILABLE: Final = (ConnectionError, TimeoutError, ClusterError)


def connect(url: str, cluster: bool, max_connections: int, wait_s: float) -> Redis:
    """A client of `url`: past `max_connections` a command waits up to `wait_s` for a connection
    (per node on a cluster) instead of failing."""
    if cluster:
        # The cluster client learns every node's slots from the one named, and follows MOVED.
        client: Any = RedisCluster.from_url(url, max_connections=max_connections)
        return cast(Redis, client)
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=wait_s)
    return Redis(connection_pool=pool)


def is_cluster(redis: Any) -> bool:
    return isinstance(redis, RedisCluster)


# One Redis is one shard: its tag is only there to keep one key layout.
SINGLE_SHARD: Final = "0"


async def shard_tags(redis: Redis) -> list[str]:
    """A hash tag for each shard: on a cluster, for each master, the first of "0", "1", ... whose
    slot it serves, as the client last learnt the slots; `SINGLE_SHARD` on one Redis. A key written under
    every tag is on every master, so a master lost and back empty is missing one."""
    if not is_cluster(redis):
        return [SINGLE_SHARD]
    cluster = cast(RedisCluster, redis)
    await cluster.initialize()  # the slots, learnt at the first command: a no-op after it
    slots = cluster.nodes_manager.slots_cache
    masters = {nodes[0].name for nodes in slots.values()}
    tags: dict[str, str] = {}
    for tag in map(str, itertools.count()):
        if nodes := slots.get(key_slot(tag.encode())):
            tags.setdefault(nodes[0].name, tag)
        if len(tags) == len(masters):
            break
    return sorted(tags.values(), key=int)


def same_slot_groups(redis: Redis, keys: Sequence[str]) -> list[list[int]]:
    """Positions of `keys` grouped so that each group's keys share a hash slot: one group of all on
    one Redis, where a script may touch any keys."""
    if not is_cluster(redis):
        return [list(range(len(keys)))] if keys else []
    groups: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key_slot(key.encode()), []).append(i)
    return list(groups.values())


async def mget(redis: Redis, keys: Sequence[str]) -> list[Any]:
    """MGET: on a cluster, one per hash slot (redis-py's `mget_nonatomic`)."""
    if is_cluster(redis):
        return cast(list[Any], await cast(RedisCluster, redis).mget_nonatomic(keys))
    return cast(list[Any], await redis.mget(keys))


def queue_mset(pipe: Pipeline, values: Mapping[str, bytes]) -> None:
    """MSET in `pipe`; a cluster pipeline, which refuses MSET, gets a SET each."""
    if isinstance(pipe, ClusterPipeline):
        for key, value in values.items():
            pipe.set(key, value)
    else:
        pipe.mset(dict(values))
