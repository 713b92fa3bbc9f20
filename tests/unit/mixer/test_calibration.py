from __future__ import annotations

import random

import pytest

from streams.mixer.calibration import (
    Calibrator,
    SegmentedCalibrator,
    ServedPrediction,
    calibration_report,
    learn_outcome,
    logit,
    sigmoid,
)
from streams.mixer.features import KINDS


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


def test_out_of_network_outcomes_fit_only_the_out_of_network_calibration() -> None:
    rng = random.Random(5)
    calibrator = SegmentedCalibrator()
    # trending tweets are liked at half what their raw predictions say; followed ones as predicted
    for _ in range(30_000):
        raw = rng.uniform(0.02, 0.2)
        in_network = rng.random() < 0.5
        liked = rng.random() < (raw if in_network else raw / 2)
        learn_outcome(
            calibrator,
            ServedPrediction(in_network, (raw,) * len(KINDS)),
            {"impression"} | ({"like"} if liked else set()),
        )
    inside, outside = calibrator.segments["in_network"], calibrator.segments["out_of_network"]
    assert inside.calibrate("like", 0.1) == pytest.approx(0.1, abs=0.01)
    assert outside.calibrate("like", 0.1) == pytest.approx(0.05, abs=0.01)
    assert inside.learnt("like") + outside.learnt("like") == 30_000
    restored = SegmentedCalibrator.from_dict(calibrator.to_dict())
    assert restored.params() == calibrator.params()
    assert restored.to_dict() == calibrator.to_dict()


def test_an_unseen_item_teaches_nothing() -> None:
    calibrator = SegmentedCalibrator()
    assert not learn_outcome(calibrator, ServedPrediction(True, (0.1,) * len(KINDS)), set())
    assert calibrator.to_dict() == SegmentedCalibrator().to_dict()
    assert learn_outcome(calibrator, ServedPrediction(True, (0.1,) * len(KINDS)), {"report"})
    assert calibrator.segments["in_network"].learnt("like") == 1


def test_a_served_prediction_round_trips_and_rejects_what_it_did_not_write() -> None:
    served = ServedPrediction(False, tuple(0.1 / (i + 1) for i in range(len(KINDS))))
    assert ServedPrediction.unpack(served.pack().encode()) == served
    assert served.pack().startswith("out_of_network,0.1,0.05,")
    with pytest.raises(ValueError, match="starts with one of"):
        ServedPrediction.unpack(b"sideways,0.1")
    with pytest.raises(ValueError, match="one raw value per kind"):
        ServedPrediction.unpack(b"in_network,0.1,0.2")
    # With its author (for the viewer-feedback learner); records written before it have none.
    authored = served._replace(author_id=7)
    assert authored.pack() == served.pack() + ",7"
    assert ServedPrediction.unpack(authored.pack()) == authored
    assert ServedPrediction.unpack(served.pack()).author_id is None
