"""Create the topics a worker reads and writes before it joins the group.

A consumer subscribing to a missing topic makes the broker auto-create it with the broker's
default partition count, which need not be ours; nodes that read several topics keyed alike rely
on equal counts. So every topic is created up front, with `HOMEMIXER_PARTITIONS` partitions, and
with the settings it needs (changelogs: no time or size retention, see `CHANGELOG_CONFIG`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from confluent_kafka.admin import AdminClient

# confluent-kafka 2.16 ships types, but its admin package imports ConfigResource without
# re-exporting it (no __all__); this is the module that defines it.
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.cimpl import NewTopic

log = logging.getLogger(__name__)
CREATE_TIMEOUT_S = 30.0

# A changelog's records go only when a snapshot covers them (the store deletes them itself): the
# broker must never delete them by age or size, and must not compact them (a record is a commit
# of many keys, not one key's value).
CHANGELOG_CONFIG: Mapping[str, str] = {
    "cleanup.policy": "delete",
    "retention.ms": "-1",
    "retention.bytes": "-1",
}


def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    replication: int = 1,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create the missing topics (`configs`: topic settings by name); warn about existing ones
    whose partition count or settings differ."""
    configs = configs or {}
    names = list(names)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=CREATE_TIMEOUT_S).topics
    _warn_about_settings(admin, [n for n in names if n in existing and n in configs], configs)
    for name in names:
        if name in existing and len(existing[name].partitions) != partitions:
            log.warning(
                "topic %s has %d partitions, HOMEMIXER_PARTITIONS is %d; keeping the topic as it is",
                name,
                len(existing[name].partitions),
                partitions,
            )
    missing = [
        NewTopic(
            n, num_partitions=partitions, replication_factor=replication, config=dict(configs.get(n, {}))
        )
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


def _warn_about_settings(
    admin: AdminClient, names: list[str], configs: Mapping[str, Mapping[str, str]]
) -> None:
    if not names:
        return
    resources = [ConfigResource("topic", name) for name in names]
    for resource, future in admin.describe_configs(resources).items():
        try:
            current = {key: entry.value for key, entry in future.result().items()}
        except Exception as exc:  # a broker without DescribeConfigs: nothing to compare with
            log.info("topic %s: settings not readable (%s)", resource.name, exc)
            continue
        wanted = configs[resource.name]
        differing = {key: value for key, value in wanted.items() if key in current and current[key] != value}
        if differing:
            log.warning(
                "topic %s has %s; it needs %s (kafka-configs.sh --alter --entity-type topics "
                "--entity-name %s --add-config ...), or the broker may delete records it still needs",
                resource.name,
                {key: current[key] for key in differing},
                differing,
                resource.name,
            )
