from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter

import pytest

from streams.mixer.adaptation import (
    ADAPTIVE,
    BANDIT_HALF_LIFE_MS,
    CONTROL,
    STRATEGIES,
    Adaptation,
    bucket_of,
    discount_factor,
    discounted_fields,
    feedback_increments,
)
from streams.mixer.engagement_model import TWITTER_WEIGHTS

TRUE_RATES = {
    "twitter": 0.05,
    "engagement-heavy": 0.08,
    "every-engagement": 0.045,
    "conversation-heavy": 0.03,
    "cautious": 0.04,
}


def _serve(adaptation: Adaptation, rng: random.Random, rounds: int, per_round: int = 20) -> list[str]:
    chosen = []
    for _ in range(rounds):
        strategy = adaptation.choose(ADAPTIVE, rng)
        engaged = sum(rng.random() < TRUE_RATES[strategy] for _ in range(per_round))
        adaptation.record_feedback(ADAPTIVE, strategy, per_round, engaged)
        chosen.append(strategy)
    return chosen


def test_buckets_are_stable_and_even() -> None:
    # Fixed values: a change of hash, salt or bucket order would move users between buckets.
    assert [bucket_of(i) for i in range(1, 9)] == [
        "control",
        "adaptive",
        "control",
        "adaptive",
        "control",
        "control",
        "adaptive",
        "adaptive",
    ]
    shares = Counter(bucket_of(i) for i in range(10_000))
    assert 4_800 < shares[CONTROL] < 5_200
    assert [bucket_of(i, salt="other") for i in range(1, 9)] != [bucket_of(i) for i in range(1, 9)]


def test_buckets_do_not_depend_on_pythons_hash_seed() -> None:
    code = "from streams.mixer.adaptation import bucket_of; print([bucket_of(i) for i in range(50)])"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {str([bucket_of(i) for i in range(50)]) + "\n"}


def test_the_bandit_converges_to_the_better_strategy() -> None:
    adaptation = Adaptation()
    chosen = _serve(adaptation, random.Random(11), rounds=1_500)
    late = Counter(chosen[-500:])
    assert late["engagement-heavy"] >= 450
    assert adaptation.state[ADAPTIVE].arms["engagement-heavy"].served > 15_000


def test_control_always_ranks_with_twitters_weights() -> None:
    adaptation = Adaptation()
    adaptation.record_feedback(ADAPTIVE, "cautious", 1_000, 900)
    rng = random.Random(0)
    assert {adaptation.choose(CONTROL, rng) for _ in range(100)} == {"twitter"}
    user = next(u for u in range(100) if bucket_of(u) == CONTROL)
    assert adaptation.plan(user, rng) == (CONTROL, "twitter", TWITTER_WEIGHTS)


def test_freeze_stops_learning_but_not_metrics() -> None:
    adaptation = Adaptation()
    for strategy in STRATEGIES:
        adaptation.record_feedback(ADAPTIVE, strategy, 1_000, 100 if strategy == "cautious" else 50)
    adaptation.freeze(ADAPTIVE)
    adaptation.record_feedback(ADAPTIVE, "twitter", 100_000, 50_000)  # would make twitter best
    rng = random.Random(1)
    assert {adaptation.choose(ADAPTIVE, rng) for _ in range(50)} == {"cautious"}
    others = len(STRATEGIES) - 1
    assert adaptation.metrics()[ADAPTIVE] == {
        "served": 1_000.0 * len(STRATEGIES) + 100_000,
        "engaged": 100.0 + 50.0 * others + 50_000,
        "rate": pytest.approx((100.0 + 50.0 * others + 50_000) / (1_000.0 * len(STRATEGIES) + 100_000)),
    }
    adaptation.unfreeze(ADAPTIVE)
    assert Counter(adaptation.choose(ADAPTIVE, rng) for _ in range(50))["twitter"] == 50


def test_a_frozen_bucket_never_picks_an_untried_strategy() -> None:
    adaptation = Adaptation()
    adaptation.freeze(ADAPTIVE)
    assert adaptation.choose(ADAPTIVE, random.Random(0)) == "twitter"
    adaptation.unfreeze(ADAPTIVE)
    adaptation.record_feedback(ADAPTIVE, "conversation-heavy", 100, 1)
    adaptation.freeze(ADAPTIVE)
    assert adaptation.choose(ADAPTIVE, random.Random(0)) == "conversation-heavy"


def test_state_round_trips_through_a_dict_of_numbers() -> None:
    adaptation = Adaptation()
    _serve(adaptation, random.Random(2), rounds=50)
    adaptation.freeze(ADAPTIVE)
    adaptation.record_feedback(ADAPTIVE, "twitter", 10, 1)
    adaptation.record_feedback(CONTROL, "twitter", 30, 3)
    state = adaptation.to_dict()
    assert all(isinstance(v, float) for fields in state.values() for v in fields.values())
    restored = Adaptation(state=state)
    assert restored.to_dict() == state
    assert restored.state[ADAPTIVE].frozen and not restored.state[CONTROL].frozen
    assert restored.metrics() == adaptation.metrics()


def test_feedback_is_increments_of_hash_fields() -> None:
    adaptation = Adaptation()
    before = adaptation.to_dict()[ADAPTIVE]
    adaptation.record_feedback(ADAPTIVE, "cautious", 20, 3)
    after = adaptation.to_dict()[ADAPTIVE]
    changed = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    assert changed == feedback_increments("cautious", 20, 3)
    assert changed == {"cautious.served": 20, "cautious.engaged": 3, "total.served": 20, "total.engaged": 3}
    with pytest.raises(ValueError):
        adaptation.record_feedback(ADAPTIVE, "nope", 1, 0)


def test_strategies_weigh_every_kind() -> None:
    for weights in STRATEGIES.values():
        assert set(weights) == set(TWITTER_WEIGHTS)


def test_discount_fades_the_arms_but_not_the_totals_or_a_frozen_snapshot() -> None:
    adaptation = Adaptation()
    adaptation.record_feedback(ADAPTIVE, "cautious", 1_000, 100)
    adaptation.freeze(ADAPTIVE)
    before = adaptation.to_dict()[ADAPTIVE]
    assert discount_factor(BANDIT_HALF_LIFE_MS) == pytest.approx(0.5)
    adaptation.discount(discount_factor(2 * BANDIT_HALF_LIFE_MS))
    after = adaptation.to_dict()[ADAPTIVE]
    assert (after["cautious.served"], after["cautious.engaged"]) == (
        pytest.approx(250.0),
        pytest.approx(25.0),
    )
    # the fields a Redis writer scales are exactly those that changed
    assert {k for k in after if after[k] != before[k]} == {"cautious.served", "cautious.engaged"}
    assert {"cautious.served", "cautious.engaged"} <= set(discounted_fields(list(STRATEGIES)))
    assert not {"total.served", "frozen.cautious.served"} & set(discounted_fields(list(STRATEGIES)))
    assert adaptation.metrics()[ADAPTIVE] == {"served": 1_000.0, "engaged": 100.0, "rate": 0.1}
    with pytest.raises(ValueError):
        adaptation.discount(1.5)


def _switches_after_a_drift(factor: float) -> int:
    """Requests until the bandit serves the new best strategy 9 times in 10, after a long run in
    which another strategy was best."""
    adaptation, rng = Adaptation(), random.Random(4)
    others = {"every-engagement": 0.03, "conversation-heavy": 0.03, "cautious": 0.03}
    before = {"twitter": 0.08, "engagement-heavy": 0.04, **others}
    after = {"twitter": 0.04, "engagement-heavy": 0.08, **others}
    recent: list[str] = []
    for request in range(6_000):
        rates = before if request < 3_000 else after
        strategy = adaptation.choose(ADAPTIVE, rng)
        engaged = sum(rng.random() < rates[strategy] for _ in range(20))
        adaptation.record_feedback(ADAPTIVE, strategy, 20, engaged)
        adaptation.discount(factor)
        recent = [*recent[-9:], strategy]
        if request >= 3_000 and recent.count("engagement-heavy") >= 9:
            return request - 3_000
    return 3_000


def test_discounting_follows_a_drift_faster() -> None:
    # one request's worth of fading: evidence halves every ~700 requests
    assert _switches_after_a_drift(0.999) * 2 < _switches_after_a_drift(1.0)
