"""Node `feature_updater`: an entity's feature families -> its whole vector -> `real_time_features`.

Consumes: the `feature-updates` route, keyed `<entity_type>:<id>`, where the aggregator, window
calculator, feature extractor, signal booster and fanout send their family of an entity's
features. Emits: per entity a batch touched, one `real_time_features` message with every family
merged (`streams.features.vector`), so the newest message of a key holds the entity's whole
vector; updates of one entity within a batch are coalesced into one message. Keeps: per entity,
each family's newest values and event time (the seed's feature state store).
"""

from __future__ import annotations

from typing import Any

from streams.features.vector import EntityVector, FamilyUpdate
from streams.runtime.batch import Batch, fresh_events
from streams.runtime.sink import SinkBatch
from streams.state.entities import EntityCodec, update_entities
from streams.state.keys import vector_key
from topologies.topics import feature_updates, node_agent, node_state, sink_topics

NODE = "feature_updater"

state = node_state(NODE, [feature_updates.get_topic_name()])
features_topic = sink_topics["real_time_features"]

CODEC: EntityCodec[str, EntityVector] = EntityCodec(vector_key, EntityVector.decode, EntityVector.encode)


def apply_update(vector: EntityVector | None, update: dict[str, Any]) -> EntityVector:
    return (vector or EntityVector()).apply(FamilyUpdate.from_json(update))


def entity_key(update: dict[str, Any]) -> tuple[str]:
    return (f"{update['entity_type']}:{update['entity_id']}",)


async def merge_families(batch: Batch, outputs: SinkBatch) -> None:
    for part in batch.partitions.values():
        touched = update_entities(part.store, part.events, entity_key, CODEC, apply_update)
        for key, vector in touched.items():
            entity_type, _, entity_id = key.partition(":")
            outputs.add_vector(features_topic, entity_type, entity_id, vector.ts, vector.merged())


node_agent(feature_updates, NODE, state, fresh_events, merge_families)
