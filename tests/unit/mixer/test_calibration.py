from __future__ import annotations

import random

import pytest

from streams.mixer.calibration import Calibrator, calibration_report, logit, sigmoid


def _miscalibrated(rng: random.Random, n: int) -> list[tuple[float, bool]]:
    """(raw prediction, outcome): outcomes drawn from a true p, raw = sigmoid(2 logit(p) + 3), so
    the raw predictor is overconfident and too high; the true calibration is a = 0.5, b = -1.5."""
    pairs = []
    for _ in range(n):
        p = rng.uniform(0.01, 0.3)
        pairs.append((sigmoid(2.0 * logit(p) + 3.0), rng.random() < p))
    return pairs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fitting_makes_held_out_predictions_match_observed_rates(seed: int) -> None:
    rng = random.Random(seed)
    train, held_out = _miscalibrated(rng, 50_000), _miscalibrated(rng, 20_000)
    calibrator = Calibrator()
    before = calibrator.report("reply", held_out).error
    calibrator.fit("reply", train)
    after = calibrator.report("reply", held_out)
    assert before > 0.2
    assert after.error < 0.02
    platt = calibrator.params()["reply"]
    assert platt.a == pytest.approx(0.5, abs=0.1)
    assert platt.b == pytest.approx(-1.5, abs=0.2)
    # The other kinds are untouched.
    assert calibrator.params()["like"].a == 1.0 and calibrator.params()["like"].b == 0.0


def test_calibrator_state_round_trips_and_resumes() -> None:
    pairs = _miscalibrated(random.Random(5), 4_000)
    whole = Calibrator()
    whole.fit("like", pairs)
    first = Calibrator()
    first.fit("like", pairs[:2_000])
    resumed = Calibrator.from_dict(first.to_dict())
    resumed.fit("like", pairs[2_000:])
    assert resumed.params() == whole.params()
    assert all(isinstance(v, float) for v in whole.to_dict().values())


def test_calibration_report_by_hand() -> None:
    report = calibration_report([(0.2, True), (0.2, False), (0.9, True), (0.7, True)], bins=2)
    # bins by prediction: {0.2, 0.2} observed 0.5; {0.7, 0.9} observed 1.0
    assert [(b.count, b.mean_predicted, b.observed_rate) for b in report.bins] == [
        (2, 0.2, 0.5),
        (2, pytest.approx(0.8), 1.0),
    ]
    assert report.error == pytest.approx(0.5 * 0.3 + 0.5 * 0.2)
    assert calibration_report([]).error == 0.0
