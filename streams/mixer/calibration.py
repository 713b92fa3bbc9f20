"""Platt calibration of raw engagement predictions, fitted online, and its calibration error.

Per kind, `p = sigmoid(a * logit(raw) + b)`. `Calibrator.update` takes one served impression's
raw prediction and whether the engagement happened, and makes one SGD step on the log loss. The
step is taken in standardised coordinates, `u = (logit(raw) - mean) / std` with a running mean
and deviation of the logits, and mapped back to (a, b): engagement logits sit far from zero
(-3 to -6), where a and b move almost together and plain SGD on them crawls.

Serving keeps one fit per segment (`SegmentedCalibrator`): an out-of-network (trending) tweet is
engaged with less than its engagement rates suggest, since the viewer did not choose its author,
and one shared fit would average that away. What a served item teaches is `learn_outcome`: a
`ServedPrediction` (the raw predictions it was ranked with) and the kinds the viewer then did.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from streams.mixer.features import KINDS

# Raw probabilities are clipped into [EPS, 1 - EPS] so that logit() stays finite.
EPS: Final = 1e-6
# SGD step in standardised coordinates: small enough to average out single outcomes, large enough
# to follow a drift within some ten thousand impressions of a kind.
CALIBRATION_LEARNING_RATE: Final = 0.005
# The running moments weigh the latest logit at least this much: they forget over ~10,000 updates.
MOMENT_MIN_WEIGHT: Final = 1e-4
# Below this variance of logits (e.g. the first update), standardising would divide by ~0.
MIN_VARIANCE: Final = 1e-4


def logit(p: float) -> float:
    p = min(max(p, EPS), 1.0 - EPS)
    return math.log(p / (1.0 - p))


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True, slots=True)
class Platt:
    """One kind's calibration: p = sigmoid(a * logit(raw) + b); (1, 0) is the identity."""

    a: float = 1.0
    b: float = 0.0

    def apply(self, raw: float) -> float:
        return sigmoid(self.a * logit(raw) + self.b)


IDENTITY: Final = Platt()


@dataclass(slots=True)
class KindFit:
    platt: Platt = field(default_factory=Platt)
    n: float = 0.0  # updates seen
    mean: float = 0.0  # running mean of logit(raw)
    var: float = 0.0  # running variance of logit(raw)

    def update(self, raw: float, outcome: bool, learning_rate: float) -> None:
        x = logit(raw)
        self.n += 1.0
        w = max(1.0 / self.n, MOMENT_MIN_WEIGHT)
        d = x - self.mean
        self.mean += w * d
        self.var = (1.0 - w) * (self.var + w * d * d)
        s = math.sqrt(self.var) if self.var > MIN_VARIANCE else 1.0
        a, b = self.platt.a, self.platt.b
        # z = a x + b = alpha u + beta with u = (x - mean) / s.
        alpha, beta, u = a * s, b + a * self.mean, (x - self.mean) / s
        g = sigmoid(alpha * u + beta) - (1.0 if outcome else 0.0)  # d(log loss)/dz
        alpha -= learning_rate * g * u
        beta -= learning_rate * g
        self.platt = Platt(alpha / s, beta - alpha / s * self.mean)


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    count: int
    mean_predicted: float
    observed_rate: float


@dataclass(frozen=True, slots=True)
class CalibrationReport:
    """Expected calibration error: the count-weighted mean of |mean predicted - observed| per bin."""

    error: float
    bins: tuple[CalibrationBin, ...]


def calibration_report(pairs: Iterable[tuple[float, bool]], bins: int = 10) -> CalibrationReport:
    """Bins (predicted probability, outcome) pairs into equal-count bins by prediction.

    Equal-count rather than equal-width bins: engagement probabilities crowd near zero, where
    equal-width bins would put nearly everything into the first.
    """
    ordered = sorted(pairs)
    n = len(ordered)
    out = []
    error = 0.0
    for i in range(bins):
        chunk = ordered[i * n // bins : (i + 1) * n // bins]
        if chunk:
            mean_p = sum(p for p, _ in chunk) / len(chunk)
            rate = sum(1 for _, y in chunk if y) / len(chunk)
            out.append(CalibrationBin(len(chunk), mean_p, rate))
            error += len(chunk) / n * abs(mean_p - rate)
    return CalibrationReport(error, tuple(out))


_FIELDS: Final = ("a", "b", "n", "mean", "var")


class Calibrator:
    """Each kind's Platt (a, b), fitted online by SGD on (raw prediction, outcome) pairs."""

    def __init__(self, learning_rate: float = CALIBRATION_LEARNING_RATE) -> None:
        self.learning_rate = learning_rate
        self._fits = {kind: KindFit() for kind in KINDS}

    def params(self) -> dict[str, Platt]:
        """The fitted parameters of each kind."""
        return {kind: fit.platt for kind, fit in self._fits.items()}

    def calibrate(self, kind: str, raw: float) -> float:
        return self._fits[kind].platt.apply(raw)

    def learnt(self, kind: str) -> float:
        """How many outcomes of `kind` the fit has learnt from."""
        return self._fits[kind].n

    def update(self, kind: str, raw: float, outcome: bool) -> None:
        """One impression: kind `kind`'s raw prediction when served, and whether it happened."""
        self._fits[kind].update(raw, outcome, self.learning_rate)

    def fit(self, kind: str, pairs: Iterable[tuple[float, bool]]) -> None:
        for raw, outcome in pairs:
            self.update(kind, raw, outcome)

    def report(self, kind: str, held_out: Sequence[tuple[float, bool]], bins: int = 10) -> CalibrationReport:
        """Calibration error of the calibrated predictions on (raw, outcome) pairs not fitted on."""
        return calibration_report(((self.calibrate(kind, raw), y) for raw, y in held_out), bins)

    def to_dict(self) -> dict[str, float]:
        """Flat numbers, `<kind>.a`, `<kind>.b` and the running moments: a Redis hash."""
        out: dict[str, float] = {}
        for kind, f in self._fits.items():
            values = (f.platt.a, f.platt.b, f.n, f.mean, f.var)
            out.update(zip((f"{kind}.{k}" for k in _FIELDS), values, strict=True))
        return out

    @classmethod
    def from_dict(
        cls, values: Mapping[str, float], learning_rate: float = CALIBRATION_LEARNING_RATE
    ) -> Calibrator:
        calibrator = cls(learning_rate)
        for kind, f in calibrator._fits.items():
            f.platt = Platt(values.get(f"{kind}.a", 1.0), values.get(f"{kind}.b", 0.0))
            f.n = values.get(f"{kind}.n", 0.0)
            f.mean = values.get(f"{kind}.mean", 0.0)
            f.var = values.get(f"{kind}.var", 0.0)
        return calibrator


IN_NETWORK: Final = "in_network"
OUT_OF_NETWORK: Final = "out_of_network"
SEGMENTS: Final[tuple[str, ...]] = (IN_NETWORK, OUT_OF_NETWORK)
# What a served item's viewer may do to it: an impression says it was seen, with no engagement.
VIEWED: Final = "impression"


def segment_of(in_network: bool) -> str:
    return IN_NETWORK if in_network else OUT_OF_NETWORK


class SegmentedCalibrator:
    """A `Calibrator` per segment: `ScoringModel(calibration=calibrator.params())`."""

    def __init__(self, learning_rate: float = CALIBRATION_LEARNING_RATE) -> None:
        self.segments = {segment: Calibrator(learning_rate) for segment in SEGMENTS}

    def update(self, in_network: bool, kind: str, raw: float, outcome: bool) -> None:
        self.segments[segment_of(in_network)].update(kind, raw, outcome)

    def params(self) -> dict[str, dict[str, Platt]]:
        return {segment: c.params() for segment, c in self.segments.items()}

    def to_dict(self) -> dict[str, float]:
        """`<segment>.<kind>.a` and the rest of each segment's `Calibrator.to_dict`: a Redis hash."""
        return {f"{segment}.{k}": v for segment, c in self.segments.items() for k, v in c.to_dict().items()}

    @classmethod
    def from_dict(
        cls, values: Mapping[str, float], learning_rate: float = CALIBRATION_LEARNING_RATE
    ) -> SegmentedCalibrator:
        calibrator = cls(learning_rate)
        for segment in SEGMENTS:
            prefix = f"{segment}."
            own = {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}
            calibrator.segments[segment] = Calibrator.from_dict(own, learning_rate)
        return calibrator


class ServedPrediction(NamedTuple):
    """What a ranked item was served with: its segment, its raw prediction of each kind in `KINDS`
    order, and its author (for the viewer-feedback learner; None in records of earlier versions).
    `pack` / `unpack` are its stored form, "in_network,raw1,...,raw7,author". A NamedTuple:
    every ranked page packs fifty."""

    in_network: bool
    raw: tuple[float, ...]
    author_id: int | None = None

    def pack(self) -> str:
        author = [] if self.author_id is None else [str(self.author_id)]
        return ",".join([segment_of(self.in_network), *map(repr, self.raw), *author])

    @classmethod
    def unpack(cls, stored: bytes | str) -> ServedPrediction:
        text = stored.decode() if isinstance(stored, bytes) else stored
        segment, *values = text.split(",")
        if segment not in SEGMENTS:
            raise ValueError(f"a served prediction starts with one of {SEGMENTS}, got {text!r}")
        if len(values) not in (len(KINDS), len(KINDS) + 1):
            raise ValueError(
                f"a served prediction has one raw value per kind {KINDS}, then its author, got {text!r}"
            )
        raw, author = values[: len(KINDS)], values[len(KINDS) :]
        return cls(segment == IN_NETWORK, tuple(float(r) for r in raw), int(author[0]) if author else None)


def learn_outcome(calibrator: SegmentedCalibrator, served: ServedPrediction, done: Collection[str]) -> bool:
    """One served item's lesson: for each kind, did the viewer do it. `done` holds the kinds the
    viewer did to the item, `VIEWED` for a bare impression. An item with neither was never seen
    (scrolled past, app closed) and says nothing about the predictions: it is skipped. Returns
    whether the item was learnt from."""
    if not done:
        return False
    for kind, raw in zip(KINDS, served.raw, strict=True):
        calibrator.update(served.in_network, kind, raw, kind in done)
    return True
