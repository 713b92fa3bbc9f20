"""Adaptation: A/B buckets, and a Thompson-sampling bandit over named weight vectors.

Choice: a bandit over a few named strategies (weight vectors), not an online learner of the
weights themselves. Feedback on a served tweet says whether the page engaged the viewer, not which
weight was wrong, so a learner of seven weights from that signal would need many more impressions
than choosing among five reasonable vectors, and a strategy stays a readable name in every log
line and response. Each (bucket, strategy) arm is Bernoulli: a served tweet is engaged or not;
the posterior is Beta(PRIOR + engaged, PRIOR + served - engaged), and each request samples every
arm's rate and takes the highest (Thompson sampling), which explores exactly as long as the arms'
posteriors overlap.

- Buckets: `bucket_of` hashes the user id with blake2b (stable across processes and releases,
  unlike Python's `hash`); `control` always ranks with Twitter's weights, `adaptive` learns.
- State: per bucket, counts only (served and engaged per strategy, and the bucket's totals), so
  every update is an increment (`feedback_increments`): concurrent servers may HINCRBYFLOAT them
  into one Redis hash.
- Discount: the arms' counts fade with a half-life (`BANDIT_HALF_LIFE_MS`, `discount`), so that
  evidence from before a drift in what users like stops outweighing what they do now; a faded arm
  has a wider posterior and is explored again. The totals never fade: they are the A/B metrics.
- Freeze: `freeze` snapshots the evidence; a frozen bucket always serves the snapshot's best
  tried arm (posterior mean; control's strategy if none was tried) while its metrics keep
  counting. `unfreeze` learns again from all counts.
- Metrics: `metrics()`, per bucket: served, engaged, rate, over the bucket's whole life.

A learning bucket also learns per (viewer, author) weights from its viewers' feedback
(`streams.mixer.viewer_feedback`). That, not the choice of weight vector, is what follows a viewer whose
interests move: the best single vector here is worth a few percent (bench/RESULTS.md).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from streams.features.decay import exponential
from streams.mixer.engagement_model import TWITTER_WEIGHTS

STRATEGIES: Final[Mapping[str, Mapping[str, float]]] = MappingProxyType(
    {
        "twitter": TWITTER_WEIGHTS,
        # Light engagement counts for more: likes and retweets x10 and x5.
        "engagement-heavy": MappingProxyType({**TWITTER_WEIGHTS, "like": 5.0, "retweet": 5.0}),
        # Conversation: replies count double.
        "conversation-heavy": MappingProxyType({**TWITTER_WEIGHTS, "reply": 27.0}),
        # Every positive engagement counts the same (10, about Twitter's weight of a click): for a
        # reward that counts engagements, this is what to rank by, and it leans less on clicks.
        "every-engagement": MappingProxyType(
            {
                **TWITTER_WEIGHTS,
                "like": 10.0,
                "retweet": 10.0,
                "reply": 10.0,
                "click": 10.0,
                "profile_click": 10.0,
            }
        ),
        # Avoid complaints: negative feedback and reports count double.
        "cautious": MappingProxyType({**TWITTER_WEIGHTS, "not_interested": -148.0, "report": -738.0}),
    }
)

CONTROL: Final = "control"
ADAPTIVE: Final = "adaptive"
BUCKETS: Final[tuple[str, ...]] = (CONTROL, ADAPTIVE)
CONTROL_STRATEGY: Final = "twitter"
# Changing the salt reshuffles every user into new buckets: one salt per experiment.
EXPERIMENT_SALT: Final = "homemixer-ranked-v1"
# Beta(1, 1): no opinion on any arm; a few hundred served tweets outweigh it.
PRIOR: Final = 1.0
# Evidence halves every 12 hours: a day-old preference counts a quarter of today's. Telling two
# arms 2% apart takes ~10^5 served tweets each: a live site serves that within the half-life; the
# 300-user simulation does not, and there the bandit keeps exploring (bench/RESULTS.md).
BANDIT_HALF_LIFE_MS: Final = 12 * 3_600_000
# The bucket's lifetime counts, next to the arms' (`<strategy>.served`, ...).
TOTAL: Final = "total"


def discount_factor(elapsed_ms: float, half_life_ms: float = BANDIT_HALF_LIFE_MS) -> float:
    """What the arms' counts are multiplied by after `elapsed_ms`."""
    return exponential(1.0, elapsed_ms, half_life_ms)


def bucket_of(user_id: int, buckets: Sequence[str] = BUCKETS, salt: str = EXPERIMENT_SALT) -> str:
    """The user's A/B bucket: blake2b of salt and id, the same in every process and release."""
    digest = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=8).digest()
    return buckets[int.from_bytes(digest, "big") % len(buckets)]


def _counts(name: str, served: float, engaged: float) -> dict[str, float]:
    return {f"{name}.served": served, f"{name}.engaged": engaged}


def feedback_increments(strategy: str, served: float, engaged: float) -> dict[str, float]:
    """The hash-field increments `record_feedback` applies: what a Redis writer HINCRBYFLOATs."""
    return {**_counts(strategy, served, engaged), **_counts(TOTAL, served, engaged)}


def discounted_fields(strategies: Sequence[str]) -> list[str]:
    """The hash fields `discount` scales: the arms' counts (not the totals, not a frozen snapshot),
    each arm's served then engaged."""
    return [f for s in strategies for f in _counts(s, 0.0, 0.0)]


def total_fields() -> list[str]:
    """The bucket's lifetime served and engaged fields."""
    return list(_counts(TOTAL, 0.0, 0.0))


@dataclass(slots=True)
class Arm:
    served: float = 0.0
    engaged: float = 0.0

    def posterior(self) -> tuple[float, float]:
        return PRIOR + self.engaged, PRIOR + max(0.0, self.served - self.engaged)

    def mean(self) -> float:
        a, b = self.posterior()
        return a / (a + b)


@dataclass(slots=True)
class BucketState:
    arms: dict[str, Arm]
    # The arms' evidence when the bucket was frozen; None while it learns.
    frozen_arms: dict[str, Arm] | None = None
    # Everything served and engaged in the bucket, never discounted.
    total: Arm = field(default_factory=Arm)

    @property
    def frozen(self) -> bool:
        return self.frozen_arms is not None

    def evidence(self) -> dict[str, Arm]:
        return self.frozen_arms if self.frozen_arms is not None else self.arms

    def to_dict(self) -> dict[str, float]:
        out = {"frozen": 1.0 if self.frozen else 0.0, **_counts(TOTAL, self.total.served, self.total.engaged)}
        for name, arm in self.arms.items():
            out.update(_counts(name, arm.served, arm.engaged))
        for name, arm in (self.frozen_arms or {}).items():
            out.update(_counts(f"frozen.{name}", arm.served, arm.engaged))
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, float], strategies: Sequence[str]) -> BucketState:
        def arms(prefix: str) -> dict[str, Arm]:
            return {
                s: Arm(values.get(f"{prefix}{s}.served", 0.0), values.get(f"{prefix}{s}.engaged", 0.0))
                for s in strategies
            }

        total = Arm(values.get(f"{TOTAL}.served", 0.0), values.get(f"{TOTAL}.engaged", 0.0))
        return cls(arms(""), arms("frozen.") if values.get("frozen", 0.0) else None, total)


class Adaptation:
    """Buckets, strategies and their learning state; pure: randomness comes in as an `rng`."""

    def __init__(
        self,
        strategies: Mapping[str, Mapping[str, float]] = STRATEGIES,
        buckets: Sequence[str] = BUCKETS,
        learning: Sequence[str] = (ADAPTIVE,),
        control_strategy: str = CONTROL_STRATEGY,
        state: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        if control_strategy not in strategies:
            raise ValueError(f"unknown control strategy {control_strategy!r}")
        if not set(learning) <= set(buckets):
            raise ValueError(f"learning buckets {list(learning)} are not all in {list(buckets)}")
        self.strategies = strategies
        self.buckets = tuple(buckets)
        self.learning = frozenset(learning)
        self.control_strategy = control_strategy
        state = state or {}
        self.state = {b: BucketState.from_dict(state.get(b, {}), list(strategies)) for b in self.buckets}

    def bucket_of(self, user_id: int) -> str:
        return bucket_of(user_id, self.buckets)

    def learns(self, user_id: int) -> bool:
        """The user's bucket is a learning one."""
        return self.bucket_of(user_id) in self.learning

    def choose(self, bucket: str, rng: random.Random) -> str:
        """The strategy for one request: Thompson sampling in a learning bucket, else control."""
        if bucket not in self.learning:
            return self.control_strategy
        state = self.state[bucket]
        if state.frozen:
            return self.best(bucket)
        arms = state.evidence()
        return max(arms, key=lambda s: rng.betavariate(*arms[s].posterior()))

    def best(self, bucket: str) -> str:
        """The bucket's best strategy so far, without exploring: control's outside a learning
        bucket, else the served arm with the highest posterior mean (an untried arm's mean is
        only the prior's), control's when none was served."""
        if bucket not in self.learning:
            return self.control_strategy
        arms = self.state[bucket].evidence()
        tried = [s for s, arm in arms.items() if arm.served > 0]
        return max(tried, key=lambda s: arms[s].mean()) if tried else self.control_strategy

    def plan(self, user_id: int, rng: random.Random) -> tuple[str, str, Mapping[str, float]]:
        """(bucket, strategy, weights) for a request: the fields of `components.Query`."""
        bucket = self.bucket_of(user_id)
        strategy = self.choose(bucket, rng)
        return bucket, strategy, self.strategies[strategy]

    def record_feedback(self, bucket: str, strategy: str, served_count: float, engaged_count: float) -> None:
        """`served_count` tweets served by `strategy` in `bucket`, `engaged_count` of them engaged."""
        if strategy not in self.strategies:
            raise ValueError(f"unknown strategy {strategy!r}")
        state = self.state[bucket]
        for arm in (state.arms[strategy], state.total):
            arm.served += served_count
            arm.engaged += engaged_count

    def discount(self, factor: float) -> None:
        """Scale every bucket's arms' counts by `factor` (`discount_factor`): older evidence
        weighs less. A frozen snapshot and the totals are left as they are."""
        if not 0.0 < factor <= 1.0:
            raise ValueError(f"a discount factor is in (0, 1], got {factor}")
        for state in self.state.values():
            for arm in state.arms.values():
                arm.served *= factor
                arm.engaged *= factor

    def freeze(self, bucket: str | None = None) -> None:
        for b in [bucket] if bucket else self.buckets:
            state = self.state[b]
            if state.frozen_arms is None:
                state.frozen_arms = {s: Arm(a.served, a.engaged) for s, a in state.arms.items()}

    def unfreeze(self, bucket: str | None = None) -> None:
        for b in [bucket] if bucket else self.buckets:
            self.state[b].frozen_arms = None

    def metrics(self) -> dict[str, dict[str, float]]:
        """Per bucket: tweets served, engaged, and the engagement rate, over the bucket's life."""
        out = {}
        for b, state in self.state.items():
            served, engaged = state.total.served, state.total.engaged
            out[b] = {"served": served, "engaged": engaged, "rate": engaged / served if served else 0.0}
        return out

    def to_dict(self) -> dict[str, dict[str, float]]:
        """Bucket -> flat numbers: one Redis hash per bucket (`{app}:adapt:<bucket>`)."""
        return {b: state.to_dict() for b, state in self.state.items()}
