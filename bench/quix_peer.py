"""The peer of bench_pipeline: the aggregator's work as a stock Quix Streams app.

python -m bench.quix_peer BOOTSTRAP SOURCE_TOPIC OUTPUT_TOPIC STATE_DIR

Reads engagement events (JSON, keyed by user) from the start, repartitions them by tweet and by
author (Quix's `group_by`, through internal topics as homemixer's routes), keeps decayed counts per
entity in Quix's RocksDB state with the contract's four half-lives, and writes one vector per
update: tweet, author, user and user x author (kept in the user's state) per event. What a user
who picked Quix Streams instead would write; bench-only (`pip install quixstreams`).
"""

from __future__ import annotations

import sys
from math import exp
from typing import Any

from quixstreams import Application, State
from quixstreams.models.topics.manager import TopicManager

from streams.features.decay import HALF_LIVES, LN2

RATES = {name: LN2 / half_life for name, half_life in HALF_LIVES.items()}


def decayed_update(stored: dict[str, Any] | None, kind: str, ts: int) -> dict[str, Any]:
    """Bring every decayed value forward to `ts` (or the newest seen), then count the event."""
    counts = stored or {"last_ts": ts, "values": {}}
    now = max(counts["last_ts"], ts)
    dt = now - counts["last_ts"]
    values: dict[str, float] = counts["values"]
    if dt:
        for name in list(values):
            if ".decayed." in name:
                values[name] *= exp(-dt * RATES[name.rsplit(".", 1)[1]])
    for half_life, rate in RATES.items():
        name = f"{kind}.decayed.{half_life}"
        values[name] = values.get(name, 0.0) + exp(-(now - ts) * rate)
    values[f"{kind}.total"] = values.get(f"{kind}.total", 0) + 1
    return {"last_ts": now, "values": values}


def vector(entity_type: str, entity_id: str, counts: dict[str, Any]) -> dict[str, Any]:
    return {
        "entity_type": entity_type,
        "entity_id": entity_id,
        "ts": counts["last_ts"],
        "features": counts["values"],
    }


def count_as(entity_type: str, field: str) -> Any:
    def update(event: dict[str, Any], state: State) -> dict[str, Any]:
        counts = decayed_update(state.get("counts"), event["type"], event["ts"])
        state.set("counts", counts)
        return vector(entity_type, str(event[field]), counts)

    return update


def count_user(event: dict[str, Any], state: State) -> list[dict[str, Any]]:
    user = decayed_update(state.get("counts"), event["type"], event["ts"])
    state.set("counts", user)
    pair_key = f"author:{event['author_id']}"
    pair = decayed_update(state.get(pair_key), event["type"], event["ts"])
    state.set(pair_key, pair)
    return [
        vector("user", str(event["user_id"]), user),
        vector("user_author", f"{event['user_id']}:{event['author_id']}", pair),
    ]


def patch_missing_retention() -> None:
    """Tansu's DescribeConfigs names no `retention.ms`, which Quix reads to configure a
    repartition topic; the Kafka default (7 days) is what a Kafka broker would have answered."""
    derive = TopicManager.derive_topic_config

    def derive_with_default(topics: Any) -> Any:
        for topic in topics:
            topic.broker_config.extra_config.setdefault("retention.ms", str(7 * 24 * 3600 * 1000))
        return derive(topics)

    TopicManager.derive_topic_config = staticmethod(derive_with_default)  # type: ignore[method-assign]


def main() -> None:
    patch_missing_retention()
    bootstrap, source, output, state_dir = sys.argv[1:5]
    app = Application(
        broker_address=bootstrap,
        consumer_group=f"quix-peer-{output}",
        auto_offset_reset="earliest",
        state_dir=state_dir,
        use_changelog_topics=True,
    )
    events = app.dataframe(app.topic(source, value_deserializer="json"))
    out = app.topic(output, value_serializer="json")
    events.group_by(lambda e: str(e["tweet_id"]), name="by_tweet").apply(
        count_as("tweet", "tweet_id"), stateful=True
    ).to_topic(out)
    events.group_by(lambda e: str(e["author_id"]), name="by_author").apply(
        count_as("author", "author_id"), stateful=True
    ).to_topic(out)
    events.apply(count_user, stateful=True, expand=True).to_topic(out)
    app.run()


if __name__ == "__main__":
    main()
