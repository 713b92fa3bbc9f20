"""Node `signal_booster`: real-time signals -> a decayed boost per tweet they name.

Consumes: the parser's `signals-by-tweet` route (one message per tweet a signal names). Emits: a
`tweet:<id>` vector (`signal.boost.decayed.<half-life>`, `signal.count.total`) per tweet the batch
touched to `real_time_features`, and to Redis for the ranker (`hm:f:signal:<id>`, `hm:trending`).
Keeps: per tweet, the boost as of its latest signal.
"""

from __future__ import annotations

from faust.types import StreamT

from streams.aggregates import RATE_HALF_LIFE as RANKING_HALF_LIFE
from streams.app import app, redis_client, settings
from streams.batch_transport import RecordBatch
from streams.decay import HALF_LIVES
from streams.node import fresh_events
from streams.serving_view import ServingWrites
from streams.signal_boost import SignalBoost, apply_signal, boost_features, decode, encode
from streams.sink import SinkBatch
from topologies.topics import ROUTES, node_state, sink_topics

NODE = "signal_booster"

(signals_topic, _) = ROUTES["real_time_signals"][0]
state = node_state(NODE, [signals_topic.get_topic_name()])
features_topic = sink_topics["real_time_features"]


def _state_key(tweet_id: int) -> bytes:
    return f"boost:{tweet_id}".encode()


async def boost_tweets(stream: StreamT[RecordBatch]) -> None:
    async for records in stream:
        await process_batch(records)


async def process_batch(records: RecordBatch) -> None:
    await state.open([records.tp])
    batch = fresh_events(state, records)
    outputs = SinkBatch()
    writes = ServingWrites(redis_client(), settings.timeline_max)
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
            boost_24h = boost.values[list(HALF_LIVES).index(RANKING_HALF_LIFE)]
            writes.features("signal", str(tweet_id), {"boost": boost_24h, "ts": float(boost.last_ts)})
            writes.trending(tweet_id, boost_24h)
    await writes.execute()
    await outputs.send_and_wait()
    await state.commit(batch.last_offsets)


app.agent(signals_topic, name=NODE)(boost_tweets)
