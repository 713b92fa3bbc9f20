"""Snowflake ids: 41 bits of ms since Twitter's epoch, 10 bits of worker, 12 bits of sequence."""

from __future__ import annotations

import time

TWITTER_EPOCH_MS = 1288834974657
WORKER_BITS = 10
SEQUENCE_BITS = 12
MAX_WORKER = (1 << WORKER_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1


def snowflake_ms(snowflake: int) -> int:
    """The creation time (ms since the Unix epoch) encoded in a Snowflake id."""
    return (snowflake >> (WORKER_BITS + SEQUENCE_BITS)) + TWITTER_EPOCH_MS


def snowflake_at(ms: int, worker: int = 0, sequence: int = 0) -> int:
    return ((ms - TWITTER_EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS)) | (worker << SEQUENCE_BITS) | sequence


class SnowflakeGenerator:
    """Strictly increasing ids for one worker id; waits out a full millisecond's sequence."""

    def __init__(self, worker: int) -> None:
        if not 0 <= worker <= MAX_WORKER:
            raise ValueError(f"worker id must be 0..{MAX_WORKER}, got {worker}")
        self.worker = worker
        self._last_ms = -1
        self._sequence = 0

    def next_id(self, now_ms: int | None = None) -> int:
        ms = int(time.time() * 1000) if now_ms is None else now_ms
        # A clock that steps back must not produce an id below one already issued.
        ms = max(ms, self._last_ms)
        if ms == self._last_ms:
            self._sequence = (self._sequence + 1) & MAX_SEQUENCE
            if self._sequence == 0:
                ms += 1
        else:
            self._sequence = 0
        self._last_ms = ms
        return snowflake_at(ms, self.worker, self._sequence)
