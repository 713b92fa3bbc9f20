"""`SharedConnection` against a real Redis: concurrent commands each get their own reply, error
replies stay in step, NOSCRIPT is redis-py's, password and db come from the URL, and a lost or
unresponsive Redis raises what `REDIS_UNAVAILABLE` names, after which it connects again."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from redis.exceptions import NoScriptError, ResponseError

from streams.dev.embedded import free_port, start_redis
from streams.serving import shared_connection
from streams.serving.connection import REDIS_UNAVAILABLE
from streams.serving.scripts import Script
from streams.serving.shared_connection import SharedConnection


def test_concurrent_commands_get_their_own_replies_and_an_error_only_its_own() -> None:
    server = start_redis()
    try:

        async def main() -> None:
            conn = SharedConnection(f"redis://127.0.0.1:{server.port}/0")
            await asyncio.gather(*(conn.execute("SET", f"k{i}", i) for i in range(500)))
            await conn.execute("SET", "text", "not a number")
            calls = [conn.execute("GET", f"k{i}") for i in range(500)]
            calls.insert(250, conn.execute("INCR", "text"))
            replies = await asyncio.gather(*calls, return_exceptions=True)
            failed = replies.pop(250)
            assert isinstance(failed, ResponseError) and "not an integer" in str(failed)
            assert replies == [str(i).encode() for i in range(500)]
            await conn.close()

        asyncio.run(main())
    finally:
        server.stop()


def test_a_script_redis_forgot_is_loaded_and_run_once() -> None:
    server = start_redis()
    script = Script("streams.serving", "hget_many.lua")
    try:

        async def main() -> None:
            conn = SharedConnection(f"redis://127.0.0.1:{server.port}/0")
            await conn.execute("HSET", "h", "f", "v")
            await conn.execute("SCRIPT", "FLUSH")
            with pytest.raises(NoScriptError):
                await conn.execute("EVALSHA", script.sha, 1, "h", "f")
            assert await script(conn, ["h"], ["f"]) == [b"v"]
            await conn.close()

        asyncio.run(main())
    finally:
        server.stop()


def test_password_and_db_come_from_the_url() -> None:
    server = start_redis(extra_args=["--requirepass", "s3cret"])
    try:

        async def main() -> None:
            conn = SharedConnection(f"redis://:s3cret@127.0.0.1:{server.port}/3")
            await conn.execute("SET", "where", "db3")
            await conn.close()
            with pytest.raises(ResponseError):
                await SharedConnection(f"redis://:wrong@127.0.0.1:{server.port}/3").execute("PING")

        asyncio.run(main())
        check = redis.Redis(port=server.port, password="s3cret", db=3)
        assert check.get("where") == b"db3"
    finally:
        server.stop()


def test_a_lost_redis_raises_unavailable_and_the_next_command_connects_again() -> None:
    port = free_port()
    server = start_redis(port)
    try:

        async def main() -> None:
            nonlocal server
            conn = SharedConnection(f"redis://127.0.0.1:{port}/0")
            assert await conn.execute("PING") == b"PONG"
            server.stop()
            with pytest.raises(REDIS_UNAVAILABLE):
                await conn.execute("PING")
            with pytest.raises(REDIS_UNAVAILABLE):
                await conn.execute("PING")
            server = start_redis(port)
            assert await conn.execute("PING") == b"PONG"
            await conn.close()

        asyncio.run(main())
    finally:
        server.stop()


def test_an_unanswered_command_times_out_and_the_next_one_connects_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = start_redis()
    monkeypatch.setattr(shared_connection, "REPLY_TIMEOUT_S", 0.3)
    try:

        async def main() -> None:
            conn = SharedConnection(f"redis://127.0.0.1:{server.port}/0")
            await conn.execute("SET", "k", "v")
            redis.Redis(port=server.port).execute_command("CLIENT", "PAUSE", 1500)
            paused = time.monotonic()
            with pytest.raises(REDIS_UNAVAILABLE):
                await conn.execute("GET", "k")
            assert time.monotonic() - paused < 1.0
            await asyncio.sleep(1.5)
            assert await conn.execute("GET", "k") == b"v"
            await conn.close()

        asyncio.run(main())
    finally:
        server.stop()
