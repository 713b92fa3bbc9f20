"""What operators and their tools reach over HTTP apart from the API (CONTRACT.md, "Operations")."""

from __future__ import annotations

from tests.harness import Cluster


def test_fausts_router_and_table_views_are_not_served(empty_broker: str, cluster: Cluster) -> None:
    worker = cluster.start_worker()
    for path in ("/router/", "/router/topics", "/table/", "/table/anything/"):
        assert worker.get(path)[0] == 404, path
