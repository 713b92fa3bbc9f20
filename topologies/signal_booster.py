"""Node `signal_booster`: real-time signals -> a decayed boost per tweet they name.

Consumes: the parser's `signals-by-tweet` route (one message per tweet a signal names). Emits: a
`tweet:<id>` vector (`signal.boost.decayed.<half-life>`, `signal.count.total`) per tweet the batch
touched to `real_time_features`, and to Redis for the ranker (`{app}:f:signal:<id>`, `{app}:trending`).
Keeps: per tweet, the boost as of its latest signal.
"""

from __future__ import annotations

from typing import Any

from streams.app import redis_client, settings
from streams.features.aggregates import RATE_HALF_LIFE as RANKING_HALF_LIFE
from streams.features.decay import HALF_LIVES
from streams.features.signal_boost import SignalBoost, apply_signal, boost_features, decode, encode
from streams.features.vector import FamilyUpdate
from streams.runtime.batch import Batch, fresh_events
from streams.runtime.sink import SinkBatch
from streams.serving.view import ServingWrites
from streams.state.entities import EntityCodec, update_entities
from streams.state.keys import boost_key
from topologies.topics import ROUTES, node_agent, node_state, send_family

NODE = "signal_booster"

(signals_topic, _) = ROUTES["real_time_signals"][0]
state = node_state(NODE, [signals_topic.get_topic_name()])


CODEC: EntityCodec[int, SignalBoost] = EntityCodec(boost_key, decode, encode)


def add_signal(boost: SignalBoost | None, event: dict[str, Any]) -> SignalBoost:
    return apply_signal(boost, event["weight"], event["ts"])


async def boost_tweets(batch: Batch, outputs: SinkBatch) -> None:
    writes = ServingWrites(redis_client(), settings.timeline_max)
    for part in batch.partitions.values():
        touched = update_entities(part.store, part.events, lambda e: (e["tweet_id"],), CODEC, add_signal)
        for tweet_id, boost in touched.items():
            update = FamilyUpdate("tweet", str(tweet_id), "signals", boost.last_ts, boost_features(boost))
            send_family(outputs, update)
            boost_24h = boost.values[list(HALF_LIVES).index(RANKING_HALF_LIFE)]
            writes.features("signal", str(tweet_id), {"boost": boost_24h, "ts": float(boost.last_ts)})
            writes.trending(tweet_id, boost_24h)
    await writes.execute()


node_agent(signals_topic, NODE, state, fresh_events, boost_tweets)
