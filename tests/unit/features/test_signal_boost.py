import math
import random

import pytest

from streams.features.signal_boost import apply_signal, boost_features, decode, encode

HALF_LIVES = {"30m": 1_800_000, "24h": 86_400_000, "72h": 259_200_000, "14d": 1_209_600_000}


def test_boost_is_the_decayed_sum_of_weights_in_and_out_of_order() -> None:
    rng = random.Random(4)
    signals = [(rng.uniform(0.1, 5.0), 1_700_000_000_000 + rng.randint(0, 10**8)) for _ in range(200)]
    state = None
    for weight, ts in signals:
        state = decode(encode(apply_signal(state, weight, ts)))
    assert state is not None
    at = max(ts for _, ts in signals)
    features = boost_features(state)
    assert features["signal.count.total"] == 200
    for label, hl in HALF_LIVES.items():
        expected = math.fsum(w * math.exp(-(at - ts) * math.log(2) / hl) for w, ts in signals)
        assert features[f"signal.boost.decayed.{label}"] == pytest.approx(expected, rel=1e-9)
