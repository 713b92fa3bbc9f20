"""What GET /readyz answers for each state of the worker, without a worker."""

from __future__ import annotations

from streams.http.health import Check, group_check, readiness, redis_check, stores_check


def test_group_is_ok_once_joined_and_not_rebalancing() -> None:
    assert group_check(True, False, 12) == Check(True, "joined the consumer group, 12 partitions assigned")
    assert group_check(False, False, 0) == Check(False, "not yet joined the consumer group")
    assert group_check(True, True, 12) == Check(False, "the consumer group is rebalancing")


def test_stores_name_the_nodes_still_catching_up() -> None:
    assert stores_check({"parser": 0, "fanout": 0}).ok
    assert stores_check({}).ok, "no partitions assigned: nothing to catch up"
    behind = stores_check({"parser": 0, "fanout": 2, "aggregator": 1})
    assert not behind.ok
    assert behind.detail == "stores still catching up with their changelogs: aggregator (1), fanout (2)"


def test_redis_says_why_a_ping_failed() -> None:
    assert redis_check(None) == Check(True, "PING answered")
    assert redis_check("Connection refused") == Check(False, "PING failed: Connection refused")


def test_ready_only_when_every_check_passes() -> None:
    ok = Check(True, "fine")
    assert readiness({"group": ok, "redis": ok}) == (
        200,
        {
            "ready": True,
            "failing": [],
            "checks": {"group": {"ok": True, "detail": "fine"}, "redis": {"ok": True, "detail": "fine"}},
        },
    )
    status, body = readiness({"group": ok, "stores": Check(False, "behind"), "redis": Check(False, "down")})
    assert status == 503
    assert body["ready"] is False and body["failing"] == ["stores", "redis"]
    assert body["checks"]["stores"] == {"ok": False, "detail": "behind"}
