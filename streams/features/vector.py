"""An entity's whole feature vector, merged from the families that different nodes keep.

The seed's feature updater: the aggregator (engagement counts and rates), the window calculator
(velocity), the feature extractor (sessions, temporal, context), the signal booster (signals) and
fanout (social graph) each send their family's newest values for an entity; the merged vector is
every family's newest values together, so the newest `real_time_features` message of an entity
holds every feature (CONTRACT.md).

A merged vector is stamped with the newest of its families' event times. Exponentially decayed
features (`<name>.decayed.<half-life>`) of an older family are brought forward to that time:
decay composes, so `v * exp(-dt ln2 / hl)` is the contract's sum over events evaluated at the
message's `ts`. Other features (totals, rates, velocity, sessions) are as of their family's update.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from math import exp
from typing import Any

import orjson

from streams.features.decay import HALF_LIVES, LN2

# The families of each entity type (and the node that keeps each). An entity with one family
# has nothing to merge: its family's values are its whole vector.
ENTITY_FAMILIES: dict[str, tuple[str, ...]] = {
    "tweet": ("engagements", "velocity", "signals"),  # aggregator, window calculator, signal booster
    "author": ("engagements",),  # aggregator
    "user": ("engagements", "activity", "social_graph"),  # aggregator, feature extractor, fanout
    "user_author": ("engagements",),  # aggregator
}

_DECAY_RATES = {f".decayed.{label}": LN2 / half_life for label, half_life in HALF_LIVES.items()}


@dataclass(frozen=True)
class FamilyUpdate:
    """One node's newest values of one family of an entity's features."""

    entity_type: str
    entity_id: str
    family: str
    ts: int
    features: dict[str, float]

    @property
    def is_whole_vector(self) -> bool:
        return ENTITY_FAMILIES.get(self.entity_type) == (self.family,)

    @property
    def key(self) -> str:
        """The entity's key in `real_time_features` and in the feature updater's route."""
        return f"{self.entity_type}:{self.entity_id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "family": self.family,
            "ts": self.ts,
            "features": self.features,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> FamilyUpdate:
        return cls(value["entity_type"], value["entity_id"], value["family"], value["ts"], value["features"])


@dataclass
class EntityVector:
    """Per family, the event time and values of its newest update."""

    families: dict[str, tuple[int, dict[str, float]]] = field(default_factory=dict)

    def apply(self, update: FamilyUpdate) -> EntityVector:
        """Replace the family's values: each family of an entity comes from one node partition
        and one producer, so updates arrive in the order they were made (a repeat after a crash
        comes right after the update it repeats). Their event time is not that order: a batch
        of late events may stamp an older one."""
        self.families[update.family] = (update.ts, update.features)
        return self

    @property
    def ts(self) -> int:
        return max(ts for ts, _ in self.families.values())

    def merged(self) -> dict[str, float]:
        """Every family's values, decayed ones brought forward to `ts`."""
        at = self.ts
        merged: dict[str, float] = {}
        for ts, features in self.families.values():
            merged.update(features if ts == at else decayed_to(features, at - ts))
        return merged

    def encode(self) -> bytes:
        return orjson.dumps(self.families)

    @classmethod
    def decode(cls, data: bytes) -> EntityVector:
        return cls({family: (ts, features) for family, (ts, features) in orjson.loads(data).items()})


def decayed_to(features: Mapping[str, float], dt_ms: int) -> dict[str, float]:
    """`features` `dt_ms` later: exponentially decayed values decay, the rest are kept."""
    moved = dict(features)
    for name, value in features.items():
        suffix = name[name.rfind(".decayed.") :] if ".decayed." in name else ""
        rate = _DECAY_RATES.get(suffix)
        if rate is not None:
            moved[name] = value * exp(-dt_ms * rate)
    return moved
