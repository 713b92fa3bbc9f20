"""Create the topics a worker reads and writes before it joins the group.

A consumer subscribing to a missing topic makes the broker auto-create it with the broker's
default partition count, which need not be ours; nodes that read several topics keyed alike rely
on equal counts. So every topic is created up front, with `HOMEMIXER_PARTITIONS` partitions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

log = logging.getLogger(__name__)
CREATE_TIMEOUT_S = 30.0


def ensure_topics(bootstrap: str, names: Iterable[str], partitions: int, replication: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=CREATE_TIMEOUT_S).topics
    for name in names:
        if name in existing and len(existing[name].partitions) != partitions:
            log.warning(
                "topic %s has %d partitions, HOMEMIXER_PARTITIONS is %d; keeping the topic as it is",
                name,
                len(existing[name].partitions),
                partitions,
            )
    missing = [
        NewTopic(n, num_partitions=partitions, replication_factor=replication)
        for n in names
        if n not in existing
    ]
    if not missing:
        return
    for name, future in admin.create_topics(missing, operation_timeout=CREATE_TIMEOUT_S).items():
        try:
            future.result()
        except Exception as exc:  # a concurrent worker may have created it first
            if "TOPIC_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
                raise
            log.info("topic %s was created concurrently", name)
