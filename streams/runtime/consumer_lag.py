"""Records behind the end of each partition the worker's consumer owns (`homemixer_consumer_lag`).

Lag is the partition's end offset minus the group's committed offset. The embedded broker (Tansu)
reports end offsets too low after multi-record batches (tests/brokers.py, BROKER_LACKS), so the
reported end alone can fall below what the worker has committed or even read: the end is taken as
at least one past the highest offset the worker has read, and the lag as at least 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, cast

from aiokafka.errors import KafkaError
from faust.types import TP, AppT

# A scrape must answer even when the broker does not: past this, the previous values stay.
END_OFFSETS_TIMEOUT_S = 2.0


def records_behind(reported_end: int, committed: int, highest_read: int | None) -> int:
    """Lag of one partition; `committed` is the next offset the group will read (Kafka's sense)."""
    end = reported_end if highest_read is None else max(reported_end, highest_read + 1)
    return max(0, end - committed)


async def partition_lags(app: AppT) -> Mapping[TP, int] | None:
    """Lag of every partition assigned to this worker; None when the broker did not answer in time."""
    consumer = app.consumer
    assigned = sorted(consumer.assignment())
    if not assigned:
        return {}
    # The consumer's own record of committed offsets (what it sought to at assignment, then what
    # it committed), as the batch transport reads it; a partition the group never committed is
    # read from its first offset.
    committed: Mapping[TP, int | None] = cast(Any, consumer)._committed_offset
    never_committed = [tp for tp in assigned if committed.get(tp) is None]
    try:
        ends, starts = await asyncio.wait_for(
            asyncio.gather(
                consumer.highwaters(*assigned),
                consumer.earliest_offsets(*never_committed) if never_committed else _no_offsets(),
            ),
            END_OFFSETS_TIMEOUT_S,
        )
    except (TimeoutError, OSError, KafkaError):
        return None
    read = app.monitor.tp_read_offsets
    lags = {}
    for tp in assigned:
        position = committed.get(tp)
        start = position if position is not None else starts.get(tp, 0)
        lags[tp] = records_behind(ends.get(tp, 0), start, read.get(tp))
    return lags


async def _no_offsets() -> Mapping[TP, int]:
    return {}
