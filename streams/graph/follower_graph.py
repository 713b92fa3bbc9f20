"""The follow graph of one partition, kept edge by edge in RocksDB.

Every change is O(1) however many followers a user has: an edge is one key, a count is one key,
and no value ever holds a whole follower list (which a celebrity's would make huge). A partition
owns the users whose id keys it: their followers (edges routed by followee) and their own
follows, blocks and mutes (edges routed by follower).
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum

from streams.state.partition_store import PartitionStore

FOLLOWERS = "fw"  # fw:<user>:<follower>
FOLLOWER_COUNT = "fc"  # fc:<user>
FOLLOWING = "fo"  # fo:<user>:<followee>
FOLLOWING_COUNT = "gc"  # gc:<user>
MUTUAL_COUNT = "mc"  # mc:<user>: users who follow the user and whom the user follows


class Relation(Enum):
    BLOCK = "bk"  # bk:<user>:<blocked>
    MUTE = "mu"  # mu:<user>:<muted>


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


def _edge(kind: str, user: int, other: int) -> bytes:
    return f"{kind}:{user}:{other}".encode()


def _count_key(kind: str, user: int) -> bytes:
    return f"{kind}:{user}".encode()


class FollowerGraph:
    def __init__(self, store: PartitionStore) -> None:
        self._store = store

    def _count(self, kind: str, user: int) -> int:
        raw = self._store.get(_count_key(kind, user))
        return 0 if raw is None else int(raw)

    def _set_edge(self, kind: str, count_kind: str | None, user: int, other: int, present: bool) -> bool:
        """Add or remove one edge; True when that changed anything (replays change nothing)."""
        key = _edge(kind, user, other)
        if (self._store.get(key) is not None) == present:
            return False
        if present:
            self._store.put(key, b"")
        else:
            self._store.delete(key)
        if count_kind is not None:
            count = self._count(count_kind, user) + (1 if present else -1)
            self._store.put(_count_key(count_kind, user), str(count).encode())
        return True

    def set_follower(self, user: int, follower: int, present: bool) -> bool:
        changed = self._set_edge(FOLLOWERS, FOLLOWER_COUNT, user, follower, present)
        if changed and self._has(FOLLOWING, user, follower):
            self._add_mutual(user, 1 if present else -1)
        return changed

    def set_following(self, user: int, followee: int, present: bool) -> bool:
        changed = self._set_edge(FOLLOWING, FOLLOWING_COUNT, user, followee, present)
        if changed and self._has(FOLLOWERS, user, followee):
            self._add_mutual(user, 1 if present else -1)
        return changed

    def _has(self, kind: str, user: int, other: int) -> bool:
        return self._store.get(_edge(kind, user, other)) is not None

    def _add_mutual(self, user: int, delta: int) -> None:
        count = self._count(MUTUAL_COUNT, user) + delta
        self._store.put(_count_key(MUTUAL_COUNT, user), str(count).encode())

    def mutual_count(self, user: int) -> int:
        return self._count(MUTUAL_COUNT, user)

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
        return self._count(FOLLOWER_COUNT, user)

    def following_count(self, user: int) -> int:
        return self._count(FOLLOWING_COUNT, user)

    def followers(self, user: int) -> Iterator[int]:
        return self._others(FOLLOWERS, user)

    def following(self, user: int) -> Iterator[int]:
        return self._others(FOLLOWING, user)

    def related(self, relation: Relation, user: int) -> Iterator[int]:
        return self._others(relation.value, user)

    def _others(self, kind: str, user: int) -> Iterator[int]:
        prefix = f"{kind}:{user}:".encode()
        for key, _ in self._store.scan_prefix(prefix):
            yield int(key[len(prefix) :])

    def users_with(self, kind: str) -> Iterator[tuple[int, int]]:
        """(user, other) for every edge of `kind` in the partition: for re-materialising Redis."""
        for key, _ in self._store.scan_prefix(f"{kind}:".encode()):
            _, user, other = key.decode().split(":")
            yield int(user), int(other)
