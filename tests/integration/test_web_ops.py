"""What operators and their tools reach over HTTP apart from the API (CONTRACT.md, "Operations")."""

from __future__ import annotations

import json
import time
from typing import Any

from streams.dev.embedded import free_port
from streams.http.auth import mint_token
from tests.harness import Cluster, WorkerProcess

READY_S = 30.0


def probe(worker: WorkerProcess, path: str) -> tuple[int, dict[str, Any]]:
    status, body = worker.get(path)
    return status, json.loads(body)


def wait_for(worker: WorkerProcess, path: str, ok: Any) -> tuple[int, dict[str, Any]]:
    """Poll `path` until `ok(status, body)`, while the worker lives."""
    deadline = time.monotonic() + READY_S
    while True:
        assert worker.alive(), worker.log.read_text()[-3000:]
        try:
            answer = probe(worker, path)
            if ok(*answer):
                return answer
        except OSError:
            answer = None
        assert time.monotonic() < deadline, f"{path} never matched: {answer}"
        time.sleep(0.2)


def test_fausts_router_and_table_views_are_not_served(empty_broker: str, cluster: Cluster) -> None:
    worker = cluster.start_worker()
    for path in ("/router/", "/router/topics", "/table/", "/table/anything/"):
        assert worker.get(path)[0] == 404, path


def test_live_and_ready_once_joined_caught_up_and_redis_answers(empty_broker: str, cluster: Cluster) -> None:
    worker = cluster.start_worker()
    assert probe(worker, "/livez") == (200, {"live": True})
    status, body = probe(worker, "/readyz")
    assert status == 200 and body["ready"] and body["failing"] == [], body
    assert set(body["checks"]) == {"group", "stores", "redis"}
    assert all(check["ok"] for check in body["checks"].values())
    assert probe(worker, "/healthz") == (status, body), "/healthz answers as /readyz"
    # Stores are caught up when their partitions are assigned, not at their first event: the
    # state of a user no event has reached yet is readable at once.
    auth = {"Authorization": f"Bearer {mint_token('test-secret', 5)}"}
    assert worker.get("/state/users/5", auth)[0] == 200


def test_not_ready_while_redis_does_not_answer(empty_broker: str, cluster: Cluster) -> None:
    worker = cluster.start_worker(wait=False, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    wait_for(worker, "/livez", lambda status, _: status == 200)
    status, body = wait_for(worker, "/readyz", lambda _, body: body["failing"] == ["redis"])
    assert status == 503 and not body["ready"], body
    assert not body["checks"]["redis"]["ok"] and "PING failed" in body["checks"]["redis"]["detail"]
    assert body["checks"]["group"]["ok"] and body["checks"]["stores"]["ok"]
    assert probe(worker, "/healthz")[0] == 503
    time.sleep(2)  # the view's restorer ticks every second and meets Redis down
    assert worker.alive() and probe(worker, "/livez")[0] == 200, "a Redis outage does not stop the worker"
