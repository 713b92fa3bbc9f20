"""Node `window_calculator`: engagements per tweet -> event-time tumbling windows -> `content_metrics`.

Consumes: the parser's `engagements-by-tweet` route. Emits: each closed window once to
`content_metrics`; each late event (its window closed more than the grace period ago) to
`system_events` as `late_event`. Keeps: per partition, the open windows and the watermark.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import cast

from faust import Stream
from faust.types import EventT, StreamT

from streams.app import app, settings
from streams.metrics import METRICS
from streams.node import BATCH_MAX, BATCH_WITHIN_S, fresh_events
from streams.sink import SinkBatch
from streams.state.partition_store import PartitionStore
from streams.windows import TumblingWindows
from topologies.topics import internal_topic, node_state, sink_topics

NODE = "window_calculator"
WINDOWS_KEY = b"windows:content_metrics"

by_tweet = internal_topic("engagements-by-tweet")
state = node_state(NODE, [by_tweet.get_topic_name()])
metrics_topic = sink_topics["content_metrics"]
system_topic = sink_topics["system_events"]

METRICS.describe("homemixer_late_events_total", "counter", "Engagements later than the window grace.")


def load_windows(store: PartitionStore) -> TumblingWindows:
    stored = store.get(WINDOWS_KEY)
    if stored is None:
        return TumblingWindows(settings.metrics_window_s * 1000, settings.grace_s * 1000)
    return TumblingWindows.decode(stored)


async def calculate_windows(stream: StreamT[bytes]) -> None:
    async for messages in cast(Stream[bytes], stream).take_events(BATCH_MAX, within=BATCH_WITHIN_S):
        await process_batch(messages)


async def process_batch(messages: Sequence[EventT[bytes]]) -> None:
    await state.open({m.message.tp for m in messages})
    batch = fresh_events(state, messages)
    outputs = SinkBatch()
    now_ms = int(time.time() * 1000)
    for tp, part in batch.partitions.items():
        # Decoded once and kept between batches; RocksDB holds the committed copy.
        windows = state.cached(tp, load_windows)
        for event in part.events:
            result = windows.add(
                event["tweet_id"], event["author_id"], event["type"], event["ts"], event.get("dwell_ms")
            )
            if result.late:
                METRICS.inc("homemixer_late_events_total", topic="engagement_events")
                outputs.add(system_topic, NODE, late_event(event, result.watermark, now_ms))
        for closed in windows.advance():
            outputs.add(metrics_topic, str(closed.tweet_id), closed.to_record())
        part.store.put(WINDOWS_KEY, windows.encode())
    await outputs.send_and_wait()
    await state.commit(batch.last_offsets)


def late_event(event: dict[str, object], watermark: int, now_ms: int) -> dict[str, object]:
    return {
        "type": "late_event",
        "ts": now_ms,
        "source": NODE,
        "source_topic": "engagement_events",
        "reason": f"event time {event['ts']} is past its window's end plus {settings.grace_s} s grace "
        f"(partition event time {watermark})",
        "attributes": {
            "event_id": str(event["event_id"]),
            "tweet_id": str(event["tweet_id"]),
            "event_ts": str(event["ts"]),
            "watermark": str(watermark),
        },
    }


app.agent(by_tweet, name=NODE)(calculate_windows)
