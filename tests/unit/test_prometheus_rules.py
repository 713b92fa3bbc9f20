"""docker/prometheus/ and docker/grafana/ as promtool reads them: a valid Prometheus config, alert
rules that fire, and stay quiet, as alerts_test.yml says, and dashboard queries that parse.
promtool is Debian's `prometheus` package; without it the tests are skipped locally and fail in CI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.harness import promtool

DOCKER = Path(__file__).resolve().parents[2] / "docker"
PROMETHEUS = DOCKER / "prometheus"
DASHBOARD = DOCKER / "grafana" / "homemixer.json"
# What Grafana puts in place of its range variable; any valid duration parses the same.
RATE_INTERVAL = "5m"


def run_promtool(*args: str, cwd: Path = PROMETHEUS) -> None:
    done = subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "alerts.yml"),
        ("test", "rules", "alerts_test.yml"),
    ],
    ids=" ".join,
)
def test_promtool_accepts_the_prometheus_files(args: tuple[str, ...]) -> None:
    run_promtool(*args)


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [
        t["expr"].replace("$__rate_interval", RATE_INTERVAL) for p in panels for t in p.get("targets", [])
    ]
    assert exprs
    # As recording rules, so that `promtool check rules` parses each query.
    rules = {
        "groups": [
            {"name": "dashboard", "rules": [{"record": f"q{i}", "expr": e} for i, e in enumerate(exprs)]}
        ]
    }
    (tmp_path / "dashboard.yml").write_text(json.dumps(rules))  # JSON is YAML
    run_promtool("check", "rules", "dashboard.yml", cwd=tmp_path)
