"""docker/prometheus/alerts.yml: valid rules (`promtool check rules`) that fire, and stay quiet,
as alerts_test.yml says (`promtool test rules`). promtool is Debian's `prometheus` package; without
it the test is skipped locally and fails in CI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.harness import promtool

PROMETHEUS = Path(__file__).resolve().parents[2] / "docker" / "prometheus"


@pytest.mark.parametrize(
    "args", [("check", "rules", "alerts.yml"), ("test", "rules", "alerts_test.yml")], ids=" ".join
)
def test_promtool_accepts_the_alerts(args: tuple[str, ...]) -> None:
    done = subprocess.run([promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
