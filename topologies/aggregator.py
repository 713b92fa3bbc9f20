"""Node `aggregator`: engagements -> decayed counts per entity -> `real_time_features`.

Consumes: the parser's engagement routes, keyed by tweet, author and user. Emits: one feature
vector per entity the batch updated, stamped with the entity's event-time high-water mark, and
the ranker's view of it to Redis (`{app}:f:<entity>`; `{app}:ni:<user>` for `not_interested`; a tweet's
like count, `{app}:lk:<tweet>`, for the page), credits
positive engagements on ranked-served tweets to the bucket and strategy that served them, and
marks every engagement on a ranked-served tweet as its outcome for the calibration fit.
Keeps: per entity, the undecayed totals and the decayed values as of that mark (decayed lazily,
as Twitter's real-time aggregates are).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from streams.app import app, redis_client, settings
from streams.features.aggregates import (
    DecayedCounts,
    apply,
    decode,
    encode,
    feature_vector,
    like_count,
    performance_features,
    scoring_fields,
)
from streams.features.registry import PERFORMANCE_ENTITIES
from streams.features.vector import FamilyUpdate
from streams.mixer.features import HomeFeatures
from streams.ranked.bandit_store import REWARD_KINDS, record_feedback
from streams.ranked.served_outcomes import mark_outcomes
from streams.runtime.batch import Batch, fresh_events
from streams.runtime.sink import SinkBatch
from streams.serving.view import ServingWrites
from streams.state.entities import EntityCodec, update_entities
from streams.state.keys import counts_key
from topologies.topics import ROUTES, node_agent, node_state, send_family

NODE = "aggregator"

Entity = tuple[str, str]
"""(entity_type, entity_id) as `real_time_features` names them."""

# Which entities an engagement updates, per route: each route's partition owns these keys.
ENTITIES: dict[str, Callable[[dict[str, Any]], Sequence[Entity]]] = {
    "engagements-by-tweet": lambda e: (("tweet", str(e["tweet_id"])),),
    "engagements-by-author": lambda e: (("author", str(e["author_id"])),),
    "engagements-by-user": lambda e: (
        ("user", str(e["user_id"])),
        ("user_author", HomeFeatures.user_author_id(e["user_id"], e["author_id"])),
    ),
}

USER_ROUTE = "engagements-by-user"
state = node_state(NODE, [topic.get_topic_name() for topic, _ in ROUTES["engagement_events"]])


def with_performance(entity_type: str, features: dict[str, float]) -> dict[str, float]:
    if entity_type in PERFORMANCE_ENTITIES:
        features.update(performance_features(features))
    return features


CODEC: EntityCodec[Entity, DecayedCounts] = EntityCodec(lambda entity: counts_key(*entity), decode, encode)


def count_engagement(counts: DecayedCounts | None, event: dict[str, Any]) -> DecayedCounts:
    return apply(counts, event["type"], event["ts"])


async def aggregate(batch: Batch, outputs: SinkBatch, route: str) -> None:
    entities_of = ENTITIES[route]
    writes = ServingWrites(redis_client(), settings.timeline_max)
    feedback: list[tuple[int, int]] = []
    outcomes: list[tuple[int, int, str]] = []
    for part in batch.partitions.values():
        if route == USER_ROUTE:
            for event in part.events:
                outcomes.append((event["user_id"], event["tweet_id"], event["type"]))
                if event["type"] == "not_interested":
                    writes.not_interested(event["user_id"], event["author_id"])
                elif event["type"] in REWARD_KINDS:
                    feedback.append((event["user_id"], event["tweet_id"]))
        touched = update_entities(part.store, part.events, entities_of, CODEC, count_engagement)
        for (entity_type, entity_id), counts in touched.items():
            features = with_performance(entity_type, feature_vector(counts, counts.last_ts))
            update = FamilyUpdate(entity_type, entity_id, "engagements", counts.last_ts, features)
            send_family(outputs, update)
            writes.features(entity_type, entity_id, scoring_fields(features, counts.last_ts))
            if entity_type == "tweet":
                writes.likes(int(entity_id), like_count(features))
    await writes.execute()
    await record_feedback(redis_client(), feedback)
    await mark_outcomes(redis_client(), outcomes)


for _topic, _ in ROUTES["engagement_events"]:
    _route = _topic.get_topic_name().removeprefix(f"{app.conf.id}-")
    node_agent(_topic, f"{NODE}.{_route}", state, fresh_events, functools.partial(aggregate, route=_route))
