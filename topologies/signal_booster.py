"""Node `signal_booster`: real-time signals -> a decayed boost per tweet they name.

Consumes: the parser's `signals-by-tweet` route (one message per tweet a signal names). Emits: a
`tweet:<id>` vector (`signal.boost.decayed.<half-life>`, `signal.count.total`) per tweet the batch
touched to `real_time_features`. Keeps: per tweet, the boost as of its latest signal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from faust import Stream
from faust.types import EventT, StreamT

from streams.app import app
from streams.node import BATCH_MAX, BATCH_WITHIN_S, fresh_events
from streams.signal_boost import SignalBoost, apply_signal, boost_features, decode, encode
from streams.sink import SinkBatch
from topologies.topics import ROUTES, node_state, sink_topics

NODE = "signal_booster"

state = node_state(NODE)
features_topic = sink_topics["real_time_features"]
(signals_topic, _) = ROUTES["real_time_signals"][0]


def _state_key(tweet_id: int) -> bytes:
    return f"boost:{tweet_id}".encode()


async def boost_tweets(stream: StreamT[bytes]) -> None:
    async for messages in cast(Stream[bytes], stream).take_events(BATCH_MAX, within=BATCH_WITHIN_S):
        await process_batch(messages)


async def process_batch(messages: Sequence[EventT[bytes]]) -> None:
    await state.open({m.message.tp for m in messages})
    batch = fresh_events(state, messages)
    outputs = SinkBatch()
    for part in batch.partitions.values():
        touched: dict[int, SignalBoost] = {}
        for event in part.events:
            tweet_id = event["tweet_id"]
            current = touched.get(tweet_id)
            if current is None:
                stored = part.store.get(_state_key(tweet_id))
                current = None if stored is None else decode(stored)
            touched[tweet_id] = apply_signal(current, event["weight"], event["ts"])
        for tweet_id, boost in touched.items():
            part.store.put(_state_key(tweet_id), encode(boost))
            vector = {
                "entity_type": "tweet",
                "entity_id": str(tweet_id),
                "ts": boost.last_ts,
                "features": boost_features(boost),
            }
            outputs.add(features_topic, f"tweet:{tweet_id}", vector)
    await outputs.send_and_wait()
    await state.commit(batch.last_offsets)


app.agent(signals_topic, name=NODE)(boost_tweets)
