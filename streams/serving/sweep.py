"""Deleting keys by pattern, for operators' commands (`homemixer reset`, `feeds clear --all`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from redis.asyncio import Redis

# Keys per SCAN step and per UNLINK: few round trips, and no single UNLINK holds Redis for long
# (UNLINK frees the values in the background).
SWEEP_BATCH: Final = 1000


async def count_matching(redis: Redis, pattern: str) -> int:
    return sum([1 async for _ in redis.scan_iter(match=pattern, count=SWEEP_BATCH)])


async def unlink_matching(redis: Redis, pattern: str, progress: Callable[[int], None]) -> int:
    """UNLINK every key matching `pattern`, a SCAN batch at a time; `progress` hears the total."""
    done = 0
    batch: list[bytes] = []
    # Deleting while scanning is safe: SCAN still returns every key that exists throughout, and
    # a key it returns twice is unlinked once (UNLINK counts only the keys it removed).
    async for key in redis.scan_iter(match=pattern, count=SWEEP_BATCH):
        batch.append(key)
        if len(batch) == SWEEP_BATCH:
            done += int(await redis.unlink(*batch))
            batch.clear()
            progress(done)
    if batch:
        done += int(await redis.unlink(*batch))
        progress(done)
    return done
