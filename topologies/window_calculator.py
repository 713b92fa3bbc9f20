"""Node `window_calculator`: engagements per tweet -> event-time tumbling windows -> `content_metrics`.

Consumes: the parser's `engagements-by-tweet` route. Emits: each closed window once to
`content_metrics`; each late event (its window closed more than the grace period ago) to
`system_events` as `late_event`; each touched tweet's engagement velocity (engagements in the last
5 minutes, sliding each minute) to the feature updater. A window closes once event time has
passed its end plus the grace on every source partition feeding it (the smallest of their latest
`ts`, leaving out partitions quiet for HOMEMIXER_IDLE_S: `SourceWatermarks`); a timer closes what
quiet partitions no longer hold open between batches. Keeps: per partition, the open windows and
each source partition's latest event time; per tweet, the velocity's minute buckets.
"""

from __future__ import annotations

import time

from faust.types import TP
from prometheus_client import Counter

from streams.app import app, settings
from streams.features.vector import FamilyUpdate
from streams.features.windows.hopping import HoppingCounter
from streams.features.windows.tumbling import TumblingWindows
from streams.runtime.batch import Batch, fresh_events, run_tick
from streams.runtime.metrics import REGISTRY
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

LATE_EVENTS = Counter(
    "homemixer_late_events_total", "Engagements later than the window grace.", ["topic"], registry=REGISTRY
).labels("engagement_events")  # the only topic windows count; exported from the start, at 0


def load_velocity(store: PartitionStore, tweet_id: int) -> HoppingCounter:
    stored = store.get(velocity_key(tweet_id))
    return HoppingCounter() if stored is None else HoppingCounter.decode(stored)


def load_windows(store: PartitionStore) -> TumblingWindows:
    stored = store.get(CONTENT_WINDOWS)
    if stored is None:
        windows = TumblingWindows(settings.metrics_window_s * 1000, settings.grace_s * 1000)
    else:
        windows = TumblingWindows.decode(stored)
    # Workers create the source topics with this many partitions (streams.runtime.topic_admin).
    return windows.configured(settings.idle_s * 1000, range(settings.partitions))


def emit_closed(windows: TumblingWindows, now_ms: int, outputs: SinkBatch) -> bool:
    """Queue every window the watermark has passed; True when any closed."""
    closed = windows.advance(now_ms)
    for window in closed:
        outputs.add(metrics_topic, str(window.tweet_id), window.to_record())
    return bool(closed)


async def count_windows(batch: Batch, outputs: SinkBatch) -> None:
    now_ms = int(time.time() * 1000)
    for tp, part in batch.partitions.items():
        # Decoded once and kept between batches; RocksDB holds the committed copy.
        windows = state.cached(tp, load_windows)
        velocities: dict[int, tuple[HoppingCounter, int]] = {}
        for event, source in zip(part.events, part.sources, strict=True):
            tweet_id = event["tweet_id"]
            counter, latest = velocities.get(tweet_id) or (load_velocity(part.store, tweet_id), 0)
            counter.add(event["ts"])
            velocities[tweet_id] = (counter, max(latest, event["ts"]))
            result = windows.add(
                event["tweet_id"],
                event["author_id"],
                event["type"],
                event["ts"],
                event.get("dwell_ms"),
                source_partition=source,
                now_ms=now_ms,
            )
            if result.late:
                LATE_EVENTS.inc()
                outputs.add(system_topic, NODE, late_event(event, result.watermark, now_ms))
        emit_closed(windows, now_ms, outputs)
        part.store.put(CONTENT_WINDOWS, windows.encode())
        for tweet_id, (counter, latest) in velocities.items():
            part.store.put(velocity_key(tweet_id), counter.encode())
            # At the tweet's newest engagement, whatever this batch's own newest was: a batch of
            # late events does not move the window back.
            newest = max(latest, counter.newest_hop or latest)
            velocity = {VELOCITY_FEATURE: float(counter.velocity(newest))}
            update = FamilyUpdate("tweet", str(tweet_id), "velocity", latest, velocity)
            send_family(outputs, update)


def late_event(event: dict[str, object], watermark: int | None, now_ms: int) -> dict[str, object]:
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


async def close_idle(tp: TP, store: PartitionStore, outputs: SinkBatch) -> bool:
    """Between batches: close the windows that quiet source partitions no longer hold open."""
    windows = state.cached(tp, load_windows)
    if not emit_closed(windows, int(time.time() * 1000), outputs):
        return False
    store.put(CONTENT_WINDOWS, windows.encode())
    return True


async def tick_idle_partitions() -> None:
    for tp in sorted(app.consumer.assignment()):
        if tp.topic == by_tweet.get_topic_name():
            await run_tick(state, tp, close_idle)


node_agent(by_tweet, NODE, state, fresh_events, count_windows)
# Often enough that a window closes within about IDLE_S of its last source partition going quiet.
app.timer(max(0.5, settings.idle_s / 4), name=f"{NODE}.idle")(tick_idle_partitions)
