"""The `homemixer` command as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from streams.dev.embedded import free_port
from streams.http.auth import ExpiredToken, InvalidToken, verify_token

# The promise: `homemixer up --demo` is ready within 15 s.
UP_READY_S = 15.0


def homemixer(*args: str) -> list[str]:
    return [sys.executable, "-m", "streams.cli", *args]


def mint(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    command = homemixer("token", *args)
    return subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)


def test_token_is_signed_with_the_configured_secret() -> None:
    out = mint("42", HOMEMIXER_SECRET="abc")
    assert out.returncode == 0, out.stderr
    assert verify_token("abc", out.stdout.strip(), time.time()) == 42
    bad = mint("0", HOMEMIXER_SECRET="abc")
    assert bad.returncode != 0 and "0" in bad.stderr


def test_token_ttl_from_the_option_else_the_setting() -> None:
    now = time.time()
    short = mint("42", "--ttl", "60", HOMEMIXER_SECRET="abc").stdout.strip()
    assert verify_token("abc", short, now) == 42
    with pytest.raises(ExpiredToken):
        verify_token("abc", short, now + 61)
    configured = mint("42", HOMEMIXER_SECRET="abc", HOMEMIXER_TOKEN_TTL_S="600").stdout.strip()
    assert verify_token("abc", configured, now + 500) == 42
    with pytest.raises(ExpiredToken):
        verify_token("abc", configured, now + 601)
    assert mint("42", "--ttl", "0").returncode != 0


def test_token_is_signed_with_the_first_of_several_secrets() -> None:
    rotated = mint("42", HOMEMIXER_SECRET="new,old").stdout.strip()
    assert verify_token("new", rotated, time.time()) == 42
    with pytest.raises(InvalidToken):
        verify_token("old", rotated, time.time())


@pytest.mark.parametrize("secrets", [None, "s3cret,dev-secret-change-me"], ids=["default", "listed"])
def test_a_worker_serving_beyond_loopback_refuses_the_public_default_secret(secrets: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HOMEMIXER_SECRET"} | {"WEB_BIND": "0.0.0.0"}
    if secrets is not None:
        env["HOMEMIXER_SECRET"] = secrets
    refused = subprocess.run(homemixer("worker"), env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "HOMEMIXER_SECRET" in refused.stderr and "anyone could mint tokens" in refused.stderr


def test_help_explains_every_command() -> None:
    out = subprocess.run(homemixer("--help"), capture_output=True, text=True, check=True).stdout
    for command in ("up", "worker", "token"):
        assert command in out
    up_help = subprocess.run(homemixer("up", "--help"), capture_output=True, text=True).stdout
    for option in ("--broker-port", "--redis-port", "--web-port", "--demo", "--workers"):
        assert option in up_help


def applied_messages(web_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics") as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("homemixer_messages_total") and 'outcome="applied"' in line
    )


def wait_applied(web_port: int, timeout_s: float = 30) -> float:
    """Source messages the worker on `web_port` has applied, once there are any (or 0)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(1)
        if (applied := applied_messages(web_port)) > 0:
            return applied
    return 0.0


def start_up(tmp_path: Path, web_port: int, *args: str) -> subprocess.Popen[str]:
    """`homemixer up --demo` on its own embedded servers, stderr to `up.err`."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("KAFKA_BROKER", "REDIS_URL", "HOMEMIXER_DATA_DIR")
    }
    return subprocess.Popen(
        homemixer("up", "--demo", "--web-port", str(web_port), *args),
        env=env,
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "up.err", "wb"),
        text=True,
    )


@pytest.mark.slow
def test_up_demo_starts_serves_health_and_stops_everything(tmp_path: Path) -> None:
    web_port = free_port()
    started = time.monotonic()
    proc = start_up(tmp_path, web_port, "--demo-rate", "100")
    try:
        lines = [proc.stdout.readline().strip() for _ in range(3)]  # type: ignore[union-attr]
        ready_after = time.monotonic() - started
        assert lines[0].startswith("broker: 127.0.0.1:")
        assert lines[1].startswith("redis: redis://127.0.0.1:")
        assert lines[2] == f"web: http://127.0.0.1:{web_port}/"
        assert ready_after < UP_READY_S, f"ready after {ready_after:.1f} s"
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/readyz") as response:
            assert response.status == 200
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 3, "broker, redis and the worker"
        assert wait_applied(web_port) > 0, "the demo workload reaches the pipeline"
        assert "demo:" in (tmp_path / "up.err").read_text(), "the demo shows progress"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    gone = psutil.wait_procs(children, timeout=10)[1]
    assert not gone, f"left behind: {gone}"


@pytest.mark.slow
def test_up_with_two_workers_shares_the_work_between_them(tmp_path: Path) -> None:
    web_port = free_port()
    proc = start_up(tmp_path, web_port, "--workers", "2", "--demo-rate", "200")
    try:
        lines = [proc.stdout.readline().strip() for _ in range(3)]  # type: ignore[union-attr]
        assert lines[2] == f"web: http://127.0.0.1:{web_port}/"
        workers = [c for c in psutil.Process(proc.pid).children() if "worker" in c.cmdline()]
        assert len(workers) == 2
        # Each worker owns some source partitions once the group has settled.
        assert wait_applied(web_port, 60) > 0 and wait_applied(web_port + 1, 60) > 0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
