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
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError
from redis.typing import EncodableT, KeyT

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

    async def __call__(self, redis: Redis, keys: Sequence[KeyT] = (), args: Sequence[EncodableT] = ()) -> Any:
        """Run now: on a client, or on a pipeline while it watches (before its MULTI)."""
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.load(redis)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)

    def queue(self, pipe: Pipeline, keys: Sequence[KeyT] = (), args: Sequence[EncodableT] = ()) -> None:
        """Queue a call in `pipe`; run the pipeline with `execute`."""
        pipe.evalsha(self.sha, len(keys), *keys, *args)

    async def load(self, redis: Redis) -> None:
        await redis.script_load(self.text)


async def execute(pipe: Pipeline) -> list[Any]:
    """`pipe.execute()` for a pipeline that may hold `Script.queue` calls (see the module doc);
    raises the first error, as `pipe.execute()` does."""
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
