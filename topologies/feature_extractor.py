"""Node `feature_extractor`: user activity -> sessions, temporal and contextual features.

Consumes: the parser's `activity-by-user` route. Emits: one `user:<id>` vector per user the batch
touched to `real_time_features` (the session, temporal and context families), stamped with the
user's latest activity time. Keeps: per user, the open session and the running session totals.
"""

from __future__ import annotations

from streams.features.user_activity import UserActivity, activity_features, apply_activity, decode, encode
from streams.features.vector import FamilyUpdate
from streams.runtime.batch import Batch, fresh_events
from streams.runtime.sink import SinkBatch
from streams.state.entities import EntityCodec, update_entities
from streams.state.keys import activity_key
from topologies.topics import ROUTES, node_agent, node_state, send_family

NODE = "feature_extractor"

(activity_topic, _) = ROUTES["user_activity_events"][0]
state = node_state(NODE, [activity_topic.get_topic_name()])


CODEC: EntityCodec[int, UserActivity] = EntityCodec(activity_key, decode, encode)


async def extract_activity(batch: Batch, outputs: SinkBatch) -> None:
    for part in batch.partitions.values():
        touched = update_entities(part.store, part.events, lambda e: (e["user_id"],), CODEC, apply_activity)
        for user, activity in touched.items():
            features = activity_features(activity)
            send_family(outputs, FamilyUpdate("user", str(user), "activity", activity.last_ts, features))


node_agent(activity_topic, NODE, state, fresh_events, extract_activity)
