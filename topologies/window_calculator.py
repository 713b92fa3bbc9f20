"""Node `window_calculator`: engagements per tweet -> event-time tumbling windows -> `content_metrics`.

Consumes: the parser's `engagements-by-tweet` route. Emits: each closed window once to
`content_metrics`; each late event (its window closed more than the grace period ago) to
`system_events` as `late_event`; each touched tweet's engagement velocity (engagements in the last
5 minutes, sliding each minute) to `real_time_features`. Keeps: per partition, the open windows
and the watermark; per tweet, the velocity's minute buckets.
"""

from __future__ import annotations

import time

from streams.app import settings
from streams.features.vector import FamilyUpdate
from streams.features.windows.hopping import HoppingCounter
from streams.features.windows.tumbling import TumblingWindows
from streams.runtime.batch import Batch, fresh_events
from streams.runtime.metrics import METRICS
from streams.runtime.sink import SinkBatch
from streams.state.keys import CONTENT_WINDOWS, velocity_key
from streams.state.partition_store import PartitionStore
from topologies.topics import internal_topic, node_agent, node_state, send_family, sink_topics

NODE = "window_calculator"

by_tweet = internal_topic("engagements-by-tweet")
state = node_state(NODE, [by_tweet.get_topic_name()])
metrics_topic = sink_topics["content_metrics"]
# Engagements in the 5 minutes up to the tweet's latest one, in 1-minute hops.
VELOCITY_FEATURE = "velocity.5m"
system_topic = sink_topics["system_events"]

METRICS.describe("homemixer_late_events_total", "counter", "Engagements later than the window grace.")


def load_velocity(store: PartitionStore, tweet_id: int) -> HoppingCounter:
    stored = store.get(velocity_key(tweet_id))
    return HoppingCounter() if stored is None else HoppingCounter.decode(stored)


def load_windows(store: PartitionStore) -> TumblingWindows:
    stored = store.get(CONTENT_WINDOWS)
    if stored is None:
        return TumblingWindows(settings.metrics_window_s * 1000, settings.grace_s * 1000)
    return TumblingWindows.decode(stored)


async def count_windows(batch: Batch, outputs: SinkBatch) -> None:
    now_ms = int(time.time() * 1000)
    for tp, part in batch.partitions.items():
        # Decoded once and kept between batches; RocksDB holds the committed copy.
        windows = state.cached(tp, load_windows)
        velocities: dict[int, tuple[HoppingCounter, int]] = {}
        for event in part.events:
            tweet_id = event["tweet_id"]
            counter, latest = velocities.get(tweet_id) or (load_velocity(part.store, tweet_id), 0)
            counter.add(event["ts"])
            velocities[tweet_id] = (counter, max(latest, event["ts"]))
            result = windows.add(
                event["tweet_id"], event["author_id"], event["type"], event["ts"], event.get("dwell_ms")
            )
            if result.late:
                METRICS.inc("homemixer_late_events_total", topic="engagement_events")
                outputs.add(system_topic, NODE, late_event(event, result.watermark, now_ms))
        for closed in windows.advance():
            outputs.add(metrics_topic, str(closed.tweet_id), closed.to_record())
        part.store.put(CONTENT_WINDOWS, windows.encode())
        for tweet_id, (counter, latest) in velocities.items():
            part.store.put(velocity_key(tweet_id), counter.encode())
            # At the tweet's newest engagement, whatever this batch's own newest was: a batch of
            # late events does not move the window back.
            newest = max(latest, counter.newest_hop or latest)
            velocity = {VELOCITY_FEATURE: float(counter.velocity(newest))}
            update = FamilyUpdate("tweet", str(tweet_id), "velocity", latest, velocity)
            send_family(outputs, update)


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


node_agent(by_tweet, NODE, state, fresh_events, count_windows)
