"""`homemixer reset`: forget everything derived under one app id, so that the next worker
reprocesses the source topics from their start.

What goes: the app's internal and changelog topics, its consumer group and its stores' snapshot
index groups (`<changelog>.snapshot.<store>`), its data dir, and its Redis keys (`{app}:*`).
Source and sink topics stay: producers own the first, readers the second.
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient

from streams.serving.keys import app_pattern

ADMIN_TIMEOUT_S = 30.0
# RocksDB holds an fcntl lock on this file of every open database.
ROCKSDB_LOCK = "LOCK"


@dataclass(frozen=True)
class ResetPlan:
    app_id: str
    topics: Sequence[str]
    groups: Sequence[str]
    data_dir: Path | None
    redis_keys: int

    def describe(self) -> list[str]:
        """What the reset deletes, one line per kind, for the operator to confirm."""
        lines = [
            f"app id {self.app_id!r}: this deletes",
            f"  {len(self.topics)} Kafka topics (internal and changelogs; source and sink topics stay)",
            f"  {len(self.groups)} consumer groups (the app's and its snapshot indexes)",
            f"  the data dir {self.data_dir}" if self.data_dir else "  no data dir (none exists)",
            f"  {self.redis_keys} Redis keys ({app_pattern(self.app_id)})",
        ]
        return lines


def app_groups(app_id: str, listed: Iterable[str], changelogs: Iterable[str]) -> list[str]:
    """The groups of `listed` that are this app's: its own and its changelogs' snapshot indexes."""
    prefixes = tuple(f"{topic}.snapshot." for topic in changelogs)
    return sorted(g for g in listed if g == app_id or g.startswith(prefixes))


def running_reason(members: int, locked: Sequence[Path]) -> str | None:
    """Why a reset must not run now, or None: deleting what live workers use under them would
    leave them writing into recreated topics and Redis with state that no longer matches."""
    reasons = []
    if members:
        reasons.append(f"the consumer group has {members} members")
    if locked:
        reasons.append(f"{len(locked)} stores in the data dir are open (e.g. {locked[0].parent})")
    if not reasons:
        return None
    return "workers of this app id are still running: " + "; ".join(reasons) + ". Stop them first."


def held_locks(data_dir: Path) -> list[Path]:
    """The RocksDB lock files under `data_dir` that another process holds."""
    held = []
    for lock in sorted(data_dir.rglob(ROCKSDB_LOCK)) if data_dir.is_dir() else []:
        with open(lock, "rb+") as handle:
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                held.append(lock)
            else:
                fcntl.lockf(handle, fcntl.LOCK_UN)
    return held


class KafkaReset:
    """The Kafka side of a reset, through the admin API."""

    def __init__(self, bootstrap: str) -> None:
        self._admin = AdminClient({"bootstrap.servers": bootstrap})

    def partition_counts(self) -> dict[str, int]:
        topics = self._admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
        return {name: len(meta.partitions) for name, meta in topics.items()}

    def members(self, group: str) -> int:
        described = self._admin.describe_consumer_groups([group], request_timeout=ADMIN_TIMEOUT_S)
        try:
            return len(described[group].result().members)
        except Exception:  # a group the broker does not know has no members
            return 0

    def groups(self, app_id: str, changelogs: Sequence[str], candidates: Iterable[str]) -> list[str]:
        """The app's groups the broker has: those it lists, and the `candidates` (the snapshot
        index groups every store could have) that hold committed offsets, for a broker that lists
        only some groups."""
        listed = [g.group_id for g in self._admin.list_consumer_groups().result().valid]
        found = set(app_groups(app_id, listed, changelogs))
        for group in {app_id, *candidates} - found:
            if self._has_offsets(group):
                found.add(group)
        return sorted(found)

    def _has_offsets(self, group: str) -> bool:
        request = [ConsumerGroupTopicPartitions(group)]
        reply = self._admin.list_consumer_group_offsets(request, request_timeout=ADMIN_TIMEOUT_S)
        try:
            committed = reply[group].result().topic_partitions
        except Exception:  # an unknown group
            return False
        return any(tp.offset >= 0 for tp in committed)

    def delete_groups(self, groups: Sequence[str]) -> None:
        if groups:
            for future in self._admin.delete_consumer_groups(list(groups)).values():
                future.result()

    def delete_topics(self, topics: Sequence[str]) -> None:
        if topics:
            deleting = self._admin.delete_topics(list(topics), operation_timeout=ADMIN_TIMEOUT_S)
            for future in deleting.values():
                future.result()


def remove_data_dir(data_dir: Path) -> None:
    shutil.rmtree(data_dir)
