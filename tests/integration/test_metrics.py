"""`GET /metrics` of a live worker: it passes `promtool check metrics` (Debian's `prometheus`
package), carries the names CONTRACT.md ("Operations") fixes with their labels and every metric the
alerts and the dashboard in docker/ use, and counts a consumer's backlog."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from streams.runtime.dashboard import PANEL_SAMPLES
from tests.harness import Cluster, WorkerProcess, metric_value, promtool
from tests.integration.test_ranked import engagement
from tests.integration.test_timelines import activity, get_timeline, graph, tweet, wait_timeline

DOCKER = Path(__file__).resolve().parents[2] / "docker"
OPERATIONS_FILES = (DOCKER / "prometheus" / "alerts.yml", DOCKER / "grafana" / "homemixer.json")
TIMELINE_ROUTE = "/timelines/{user_id}"
AUTHOR, READER = 1, 2
# Enough that the paused worker cannot have caught up by the first scrape after it resumes.
BACKLOG = 20_000


def exposition(worker: WorkerProcess) -> str:
    status, body = worker.get("/metrics")
    assert status == 200
    return body.decode()


def wait_metric(worker: WorkerProcess, name: str, timeout: float = 30, **labels: str) -> float:
    deadline = time.monotonic() + timeout
    while (value := worker.metric(name, **labels)) <= 0:
        assert time.monotonic() < deadline, f"{name}{labels} never counted"
        time.sleep(0.2)
    return value


def test_a_live_workers_metrics_pass_promtool_and_carry_the_contracts_names(
    empty_broker: str, cluster: Cluster
) -> None:
    check = promtool()
    worker = cluster.start_worker()
    post = tweet(AUTHOR)
    cluster.produce([activity(READER), graph("follow", READER, AUTHOR)])
    first = wait_timeline(worker, READER, lambda body: True)  # rebuilt: it did not exist yet
    cluster.produce([post])
    wait_timeline(worker, READER, lambda body: len(body["items"]) == 1)  # pushed, a cache hit
    status, ranked = get_timeline(worker, READER, mode="ranked")
    assert status == 200 and ranked["items"]
    assert get_timeline(worker, READER, mode="sideways")[0] == 400
    cluster.produce([engagement(READER, post[2]["tweet_id"], AUTHOR, "like")])
    wait_metric(worker, "homemixer_feature_delay_seconds_count")
    text = exposition(worker)

    checked = subprocess.run([check, "check", "metrics"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    assert first["rebuilt"]
    assert metric_value(text, "homemixer_timeline_reads_total", cache="rebuild") >= 1
    assert metric_value(text, "homemixer_timeline_reads_total", cache="hit") >= 1
    requests = "homemixer_http_request_duration_seconds_count"
    assert metric_value(text, requests, route=TIMELINE_ROUTE, mode="latest", status="200") >= 2
    assert metric_value(text, requests, route=TIMELINE_ROUTE, mode="ranked", status="200") == 1
    assert metric_value(text, requests, route=TIMELINE_ROUTE, mode="", status="400") == 1
    assert metric_value(text, "homemixer_fanout_delay_seconds_count") == 1
    assert metric_value(text, "homemixer_messages_total", topic="content_events", outcome="applied") == 1
    assert metric_value(text, "process_cpu_seconds_total") > 0
    # The only worker is the leader, so it exports the cluster-wide values.
    assert metric_value(text, "homemixer_ab_served", bucket=ranked["bucket"]) == len(ranked["items"])
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    lags = [s for s in samples if s.name == "homemixer_consumer_lag"]
    assert {s.labels["topic"] for s in lags} >= {"content_events", "engagement_events"}
    assert all(s.value >= 0 for s in lags)
    assert not [s for s in samples if "/timelines/2" in s.labels.get("route", "")], "paths are not labels"

    used = {name for path in OPERATIONS_FILES for name in re.findall(r"\bhomemixer_\w+", path.read_text())}
    exported = {s.name for s in samples}
    assert used and used <= exported, f"used by docker/ but not exported: {sorted(used - exported)}"
    assert PANEL_SAMPLES <= exported, f"/dashboard reads, unexported: {sorted(PANEL_SAMPLES - exported)}"


def consumer_lags(worker: WorkerProcess) -> dict[tuple[str, str], float]:
    return {
        (s.labels["topic"], s.labels["partition"]): s.value
        for f in text_string_to_metric_families(exposition(worker))
        for s in f.samples
        if s.name == "homemixer_consumer_lag"
    }


def test_the_lag_counts_a_backlog_and_drains_to_zero_once_it_is_committed(
    empty_broker: str, cluster: Cluster
) -> None:
    worker = cluster.start_worker()
    # Paused, the worker reads nothing while the backlog is produced; short enough that the group
    # keeps it (HOMEMIXER_FAST_REBALANCE's session timeout is 6 s).
    os.kill(worker.proc.pid, signal.SIGSTOP)
    try:
        cluster.produce([activity(user) for user in range(1, BACKLOG + 1)])
    finally:
        os.kill(worker.proc.pid, signal.SIGCONT)
    behind = sum(v for (topic, _), v in consumer_lags(worker).items() if topic == "user_activity_events")
    assert 0 < behind <= BACKLOG
    deadline = time.monotonic() + 30
    while any(lags := consumer_lags(worker).values()):
        assert time.monotonic() < deadline, f"the lag never drained: {lags}"
        time.sleep(0.5)
    applied = worker.metric("homemixer_messages_total", topic="user_activity_events", outcome="applied")
    assert applied == BACKLOG
