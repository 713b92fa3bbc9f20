"""Every Lua script homemixer runs in Redis: each is a `.lua` file beside the module that runs it,
read from the installed package and run by EVALSHA.

Redis keeps a loaded script until it restarts or is told SCRIPT FLUSH. A call that meets NOSCRIPT
ran nothing, so loading the script and running the call once more runs it exactly once:

- `Script.__call__` runs a call now and does that itself;
- `execute` runs a pipeline of `Script.queue` calls. Outside a transaction only the calls that met
  NOSCRIPT run again, in one more round trip after the rest of the pipeline (the script calls
  one pipeline holds here touch keys of their own, so their order does not matter). A call in a
  MULTI cannot run again inside it, so a transaction's scripts are loaded before it runs: one
  round trip per script, paid by the fitter, not by the read path.

On a Redis Cluster, `__call__` is the same (SCRIPT LOAD reaches every master); a cluster pipeline
sends its scripts by EVAL, text and all, because it spreads its calls over the masters, any of
which may have restarted without the script, and cannot rerun just the calls that met NOSCRIPT.
Redis caches an EVAL's compiled script by its SHA1, so only the bytes sent cost more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.exceptions import NoScriptError
from redis.typing import EncodableT, KeyT

from streams.serving.connection import same_slot_groups
from streams.serving.shared_connection import SharedConnection

# Every script by its sha: what `execute` loads again for a queued call that met NOSCRIPT.
_BY_SHA: Final[dict[str, Script]] = {}


class Script:
    """One `.lua` file of `package`. KEYS are the keys it touches; ARGV the rest."""

    def __init__(self, package: str, name: str) -> None:
        self.name = f"{package}/{name}"
        self.text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
        # Redis names a script by the SHA1 of its text, so calls need no SCRIPT LOAD's answer.
        self.sha = hashlib.sha1(self.text.encode()).hexdigest()
        _BY_SHA[self.sha] = self

    def __repr__(self) -> str:
        return f"Script({self.name})"

    async def __call__(
        self, redis: Redis | SharedConnection, keys: Sequence[KeyT] = (), args: Sequence[EncodableT] = ()
    ) -> Any:
        """Run now: on a client, a shared connection, or a pipeline while it watches (before its
        MULTI)."""
        if isinstance(redis, ClusterPipeline):
            # Which cannot SCRIPT LOAD on the master it watches; EVAL needs no script loaded.
            return await redis.eval(self.text, len(keys), *keys, *args)
        command = redis.execute if isinstance(redis, SharedConnection) else redis.execute_command
        try:
            return await command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.load(redis)
            return await command("EVALSHA", self.sha, len(keys), *keys, *args)

    def queue(self, pipe: Pipeline, keys: Sequence[KeyT] = (), args: Sequence[EncodableT] = ()) -> None:
        """Queue a call in `pipe`; run the pipeline with `execute`."""
        if isinstance(pipe, ClusterPipeline):
            pipe.eval(self.text, len(keys), *keys, *args)
        else:
            pipe.evalsha(self.sha, len(keys), *keys, *args)

    async def load(self, redis: Redis | SharedConnection) -> None:
        if isinstance(redis, SharedConnection):
            await redis.execute("SCRIPT", "LOAD", self.text)
        else:
            await redis.script_load(self.text)

    async def per_slot(
        self, redis: Redis, keys: Sequence[str], args_of: Callable[[list[int]], Sequence[EncodableT]]
    ) -> list[tuple[list[int], Any]]:
        """Run over `keys` as one call on one Redis; on a cluster, one call per hash slot of them,
        pipelined, each with `args_of(its keys' positions)`. (positions, answer) per call."""
        groups = same_slot_groups(redis, keys)
        if len(groups) == 1:
            (only,) = groups
            return [(only, await self(redis, keys, args_of(only)))]
        pipe = redis.pipeline(transaction=False)
        for group in groups:
            self.queue(pipe, [keys[i] for i in group], args_of(group))
        return list(zip(groups, await execute(pipe), strict=True))


async def execute(pipe: Pipeline) -> list[Any]:
    """`pipe.execute()` for a pipeline that may hold `Script.queue` calls (see the module doc);
    raises the first error, as `pipe.execute()` does."""
    if isinstance(pipe, ClusterPipeline):
        return await pipe.execute()
    stack = list(pipe.command_stack)
    calls = {
        i: _BY_SHA[sha]
        for i, (args, _) in enumerate(stack)
        if args[0] == "EVALSHA" and isinstance(sha := args[1], str) and sha in _BY_SHA
    }
    if pipe.is_transaction or pipe.explicit_transaction:
        for script in dict.fromkeys(calls.values()):
            # On the pipeline's own connection: past its MULTI a plain command would be queued.
            await pipe.immediate_execute_command("SCRIPT LOAD", script.text)  # type: ignore[no-untyped-call]
        return await pipe.execute()
    results = await pipe.execute(raise_on_error=False)
    again = [i for i in calls if isinstance(results[i], NoScriptError)]
    if again:
        for script in dict.fromkeys(calls[i] for i in again):
            pipe.script_load(script.text)
        loads = len(pipe)
        for i in again:
            args, options = stack[i]
            pipe.execute_command(*args, **options)
        rerun = await pipe.execute(raise_on_error=False)
        for i, result in zip(again, rerun[loads:], strict=True):
            results[i] = result
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results
