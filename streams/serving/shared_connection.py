"""One connection to one Redis that a process's latest reads share, pipelined.

Redis answers a connection's commands in the order it got them, so concurrent reads can each
write their command as it comes and take the next reply as theirs: no pool, no lock, no per-call
setup. redis-py's asyncio client spent a third of a latest read's Python on those (its pool's
condition, its retry and timeout wrappers, packing), more than the read's own work; this costs a
write, a future and the reply's parse (hiredis).

Errors are redis-py's, so callers handle both clients alike: an error reply raises
`ResponseError` (`NoScriptError` for NOSCRIPT) and leaves the connection in step; a lost or
unresponsive connection raises `ConnectionError` or `TimeoutError` to every command waiting on
it, and the next command connects again.
"""

from __future__ import annotations

import asyncio
import builtins
from collections import deque
from typing import Any, Final

import hiredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError, NoScriptError, ResponseError, TimeoutError
from redis.typing import EncodableT

# A command unanswered this long means the connection is lost even if TCP has not said so.
REPLY_TIMEOUT_S: Final = 10.0


class _Replies(asyncio.Protocol):
    """Parses the socket's replies and hands each to the oldest command waiting."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.lost: Exception | None = None
        self._reader = hiredis.Reader(replyError=ResponseError)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            waiter = self.waiting.popleft()
            if waiter.done():  # its caller timed out; the reply still had to be read past
                continue
            if isinstance(reply, ResponseError):
                waiter.set_exception(_error_of(reply))
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = ConnectionError(f"connection to Redis lost: {exc or 'closed'}")
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(self.lost)


def _error_of(reply: ResponseError) -> ResponseError:
    message = str(reply)
    return NoScriptError(message) if message.startswith("NOSCRIPT") else reply


class SharedConnection:
    """Commands to the Redis of `url` (redis:// or unix://, with its password and db) on one
    pipelined connection, opened at the first command and again after a loss."""

    def __init__(self, url: str) -> None:
        options = parse_url(url)
        if "connection_class" in options and "path" not in options:
            raise ValueError(
                f"a shared connection speaks plain TCP or a unix socket, not {url.split(':')[0]}"
            )
        self._options = options
        self._replies: _Replies | None = None
        self._connecting = asyncio.Lock()

    async def execute(self, *args: EncodableT) -> Any:
        replies = self._replies
        if replies is None or replies.lost is not None:
            replies = await self._connect()
        return await self._send(replies, args)

    async def close(self) -> None:
        if self._replies is not None and self._replies.transport is not None:
            self._replies.transport.close()
        self._replies = None

    async def _send(self, replies: _Replies, args: tuple[EncodableT, ...]) -> Any:
        assert replies.transport is not None
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        replies.waiting.append(waiter)
        replies.transport.write(hiredis.pack_command(args))  # type: ignore[arg-type]
        try:
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                return await waiter
        except builtins.TimeoutError as exc:
            # Whatever Redis answers later cannot be told apart from the next command's reply.
            replies.transport.close()
            raise TimeoutError(f"no reply from Redis in {REPLY_TIMEOUT_S:.0f} s") from exc

    async def _connect(self) -> _Replies:
        async with self._connecting:
            if self._replies is not None and self._replies.lost is None:
                return self._replies  # another command connected meanwhile
            loop = asyncio.get_running_loop()
            options = self._options
            try:
                if "path" in options:
                    _, replies = await loop.create_unix_connection(_Replies, options["path"])
                else:
                    _, replies = await loop.create_connection(
                        _Replies, options.get("host", "localhost"), options.get("port", 6379)
                    )
            except OSError as exc:
                raise ConnectionError(f"cannot connect to Redis: {exc}") from exc
            try:
                if options.get("password"):
                    auth = [options["password"]]
                    if options.get("username"):
                        auth.insert(0, options["username"])
                    await self._send(replies, ("AUTH", *auth))
                if options.get("db"):
                    await self._send(replies, ("SELECT", options["db"]))
            except BaseException:
                assert replies.transport is not None
                replies.transport.close()
                raise
            self._replies = replies
            return replies
