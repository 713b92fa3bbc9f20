"""What `GET /readyz` answers (CONTRACT.md, "Operations"), apart from the web server.

Pure: the view gathers what each check looks at, these functions say what it means, so every
answer is tested without a worker. A worker is ready when it has joined the consumer group, the
stores of its partitions have caught up with their changelogs, and Redis answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    detail: str


def group_check(joined: bool, rebalancing: bool, assigned: int) -> Check:
    if rebalancing:
        return Check(False, "the consumer group is rebalancing")
    if not joined:
        return Check(False, "not yet joined the consumer group")
    return Check(True, f"joined the consumer group, {assigned} partitions assigned")


def stores_check(behind: Mapping[str, int]) -> Check:
    """`behind`: per node, how many of its assigned partitions have a store not yet caught up."""
    lagging = sorted((node, count) for node, count in behind.items() if count)
    if not lagging:
        return Check(True, "every assigned partition's store has caught up with its changelog")
    nodes = ", ".join(f"{node} ({count})" for node, count in lagging)
    return Check(False, f"stores still catching up with their changelogs: {nodes}")


def redis_check(error: str | None) -> Check:
    return Check(True, "PING answered") if error is None else Check(False, f"PING failed: {error}")


def readiness(checks: Mapping[str, Check]) -> tuple[int, dict[str, object]]:
    """The status (200 when every check passes, else 503) and a body naming the failing checks."""
    failing = [name for name, check in checks.items() if not check.ok]
    body = {
        "ready": not failing,
        "failing": failing,
        "checks": {name: {"ok": check.ok, "detail": check.detail} for name, check in checks.items()},
    }
    return (503 if failing else 200), body
