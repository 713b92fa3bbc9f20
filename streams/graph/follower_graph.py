"""The follow graph of one partition, kept edge by edge in RocksDB.

Every change is O(1) however many followers a user has: an edge is one key, a count is one key,
and no value ever holds a whole follower list (which a celebrity's would make huge). A partition
owns the users whose id keys it: their followers (edges routed by followee) and their own
follows, blocks and mutes (edges routed by follower).
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum

from streams.state.keys import Graph, count_key, edge_key, edges_prefix, parse_count_key, parse_edge
from streams.state.partition_store import PartitionStore


class Relation(Enum):
    """An edge the follower keeps about another user, named by its key kind."""

    BLOCK = Graph.BLOCKS
    MUTE = Graph.MUTES


class Crossing(Enum):
    UP = "up"
    DOWN = "down"


def celebrity_crossing(before: int, after: int, threshold: int) -> Crossing | None:
    """Whether a follower count change crosses the celebrity threshold (celebrity: count >= it)."""
    if before < threshold <= after:
        return Crossing.UP
    if after < threshold <= before:
        return Crossing.DOWN
    return None


class FollowerGraph:
    def __init__(self, store: PartitionStore) -> None:
        self._store = store

    def _count(self, kind: Graph, user: int) -> int:
        raw = self._store.get(count_key(kind, user))
        return 0 if raw is None else int(raw)

    def _set_edge(self, kind: Graph, count_kind: Graph | None, user: int, other: int, present: bool) -> bool:
        """Add or remove one edge; True when that changed anything (replays change nothing)."""
        key = edge_key(kind, user, other)
        if (self._store.get(key) is not None) == present:
            return False
        if present:
            self._store.put(key, b"")
        else:
            self._store.delete(key)
        if count_kind is not None:
            count = self._count(count_kind, user) + (1 if present else -1)
            self._store.put(count_key(count_kind, user), str(count).encode())
        return True

    def set_follower(self, user: int, follower: int, present: bool) -> bool:
        changed = self._set_edge(Graph.FOLLOWERS, Graph.FOLLOWER_COUNT, user, follower, present)
        if changed and self._has(Graph.FOLLOWING, user, follower):
            self._add_mutual(user, 1 if present else -1)
        return changed

    def set_following(self, user: int, followee: int, present: bool) -> bool:
        changed = self._set_edge(Graph.FOLLOWING, Graph.FOLLOWING_COUNT, user, followee, present)
        if changed and self._has(Graph.FOLLOWERS, user, followee):
            self._add_mutual(user, 1 if present else -1)
        return changed

    def _has(self, kind: Graph, user: int, other: int) -> bool:
        return self._store.get(edge_key(kind, user, other)) is not None

    def _add_mutual(self, user: int, delta: int) -> None:
        count = self._count(Graph.MUTUAL_COUNT, user) + delta
        self._store.put(count_key(Graph.MUTUAL_COUNT, user), str(count).encode())

    def mutual_count(self, user: int) -> int:
        return self._count(Graph.MUTUAL_COUNT, user)

    def social_features(self, user: int) -> dict[str, float]:
        """The social-graph feature family of a user (names in schemas/FEATURES.md)."""
        return {
            "social.followers": float(self.follower_count(user)),
            "social.following": float(self.following_count(user)),
            "social.mutual": float(self.mutual_count(user)),
        }

    def set_relation(self, relation: Relation, user: int, other: int, present: bool) -> bool:
        return self._set_edge(relation.value, None, user, other, present)

    def follower_count(self, user: int) -> int:
        return self._count(Graph.FOLLOWER_COUNT, user)

    def following_count(self, user: int) -> int:
        return self._count(Graph.FOLLOWING_COUNT, user)

    def followers(self, user: int) -> Iterator[int]:
        return self._others(Graph.FOLLOWERS, user)

    def following(self, user: int) -> Iterator[int]:
        return self._others(Graph.FOLLOWING, user)

    def related(self, relation: Relation, user: int) -> Iterator[int]:
        return self._others(relation.value, user)

    def _others(self, kind: Graph, user: int) -> Iterator[int]:
        for key, _ in self._store.scan_prefix(edges_prefix(kind, user)):
            yield parse_edge(key)[1]

    def users_with(self, kind: Graph) -> Iterator[tuple[int, int]]:
        """(user, other) for every edge of `kind` in the partition: for re-materialising Redis."""
        for key, _ in self._store.scan_prefix(edges_prefix(kind)):
            yield parse_edge(key)

    def celebrities(self, threshold: int) -> Iterator[int]:
        """Every user of the partition with at least `threshold` followers."""
        for key, raw in self._store.scan_prefix(edges_prefix(Graph.FOLLOWER_COUNT)):
            if int(raw) >= threshold:
                yield parse_count_key(key)
