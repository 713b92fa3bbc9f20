"""The reset's choices, without a broker: which groups are the app's, and when it refuses."""

from pathlib import Path

from streams.ops.reset import ResetPlan, app_groups, running_reason


def test_only_the_apps_group_and_its_changelogs_snapshot_indexes_are_chosen() -> None:
    listed = ["hm", "hm-fanout-changelog.snapshot.p0", "hm-b", "hm-b-fanout-changelog.snapshot.p0", "x"]
    assert app_groups("hm", listed, ["hm-fanout-changelog"]) == ["hm", "hm-fanout-changelog.snapshot.p0"]


def test_running_workers_are_refused_with_the_reason() -> None:
    assert running_reason(0, []) is None
    reason = running_reason(2, [Path("/d/fanout/p0/LOCK")])
    assert reason is not None and "2 members" in reason and "/d/fanout/p0" in reason


def test_the_plan_says_what_goes() -> None:
    text = "\n".join(ResetPlan("hm", ["a", "b"], ["hm"], None, 7).describe())
    assert "2 Kafka topics" in text and "1 consumer groups" in text and "7 Redis keys (hm:*)" in text
