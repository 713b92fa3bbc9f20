"""The mixer's vocabulary: identifiers, the query, candidates, component bases and the Protocols
the caller implements (candidate fetchers, the hydrator, the served recorder).

After product-mixer: every component has a validated identifier, a kind plus a CamelCase name,
that names it in removals, reasons and metrics. A filter returns what it kept and what it removed
with a reason; a scorer returns exactly one result per candidate, in order; a selector reorders
or rescales, and drops only what it must, with a reason.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Literal, NamedTuple, Protocol

from streams.mixer.engagement_model import TWITTER_WEIGHTS
from streams.mixer.features import CandidateFeatures

ComponentKind = Literal["CandidateSource", "Filter", "Scorer", "Selector", "SideEffect"]
Source = Literal["push", "pull", "trending"]

_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")


@dataclass(frozen=True, slots=True)
class ComponentIdentifier:
    kind: ComponentKind
    name: str

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"a component name is CamelCase ([A-Z][A-Za-z0-9]*), got {self.name!r}")

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class Query:
    """One ranked request. `bucket`, `strategy` and `weights` come from `adaptation`."""

    user_id: int
    limit: int
    # Set when the client pages on (the id the previous page ended at): PreviouslyServed applies.
    max_id: int | None
    now_ms: int
    bucket: str = "control"
    strategy: str = "twitter"
    weights: Mapping[str, float] = field(default_factory=lambda: TWITTER_WEIGHTS)

    def __post_init__(self) -> None:
        if self.limit <= 0:
            raise ValueError(f"limit must be > 0, got {self.limit}")


@dataclass(frozen=True, slots=True)
class ViewerContext:
    """What the filters need to know of the viewer (the query's user), fetched once per request."""

    following: frozenset[int] = frozenset()
    # Authors the viewer blocked or who blocked the viewer.
    blocked: frozenset[int] = frozenset()
    muted: frozenset[int] = frozenset()
    # Authors the viewer marked `not_interested`.
    not_interested: frozenset[int] = frozenset()


class SourceItem(NamedTuple):
    """What a candidate source proposes. `reason` overrides the source's default, e.g. for a
    trending tweet "trending: 3 breaking-news signals". A NamedTuple, like the other values a
    request builds hundreds of: a frozen dataclass costs ~7x as much to construct."""

    tweet_id: int
    author_id: int | None = None
    reason: str = ""


@dataclass(slots=True)
class Candidate:
    """A hydrated candidate; `author_id` is the hydrated one, `reasons` read in order."""

    tweet_id: int
    author_id: int
    source: Source
    features: CandidateFeatures
    score: float = 0.0
    predictions: Mapping[str, float] = field(default_factory=dict)
    raw_predictions: Mapping[str, float] = field(default_factory=dict)
    # Why the source proposed it, e.g. "followed author".
    source_reason: str = ""
    # What selectors did to it, in order, e.g. "trending boost x1.30".
    reasons: list[str] = field(default_factory=list)

    @property
    def in_network(self) -> bool:
        return self.features.in_network


@dataclass(frozen=True, slots=True)
class FilterResult:
    kept: list[Candidate]
    # tweet id -> why it was removed
    removed: dict[int, str]


class ScoreResult(NamedTuple):
    score: float
    predictions: Mapping[str, float]
    # Before calibration: what the served-outcome record keeps to fit the calibration on.
    raw_predictions: Mapping[str, float] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class SelectorResult:
    selected: list[Candidate]
    # tweet id -> why it was dropped; empty unless the selector's rule cannot be met otherwise
    dropped: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Removal:
    component: str  # the identifier's name, e.g. "BlockedOrMuted"
    reason: str


@dataclass(frozen=True, slots=True)
class PageItem:
    tweet_id: int
    author_id: int
    source: Source
    in_network: bool
    score: float
    # Why it is on the page, e.g. "followed author; predicted like 4%, reply 1%".
    reason: str
    predictions: Mapping[str, float]
    # Before calibration; recorded for the calibration fit, not part of the response.
    raw_predictions: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "tweet_id": self.tweet_id,
            "author_id": self.author_id,
            "source": self.source,
            "in_network": self.in_network,
            "score": self.score,
            "reason": self.reason,
            "predictions": dict(self.predictions),
        }


class CandidateFetcher(Protocol):
    """Fetches one source's candidates for a query (the caller's Redis read)."""

    async def __call__(self, query: Query) -> Sequence[SourceItem]: ...


class Hydrator(Protocol):
    """Reads state for a request; both calls are one round of reads each, not one per candidate."""

    async def hydrate_viewer(self, query: Query) -> ViewerContext: ...

    async def hydrate(
        self, query: Query, viewer: ViewerContext, items: Sequence[SourceItem]
    ) -> Sequence[CandidateFeatures]:
        """Exactly one `CandidateFeatures` per item, in order; `CandidateFeatures.deleted_tweet`
        for an item whose tweet is gone."""
        ...


class ServedRecorder(Protocol):
    async def record_served(self, query: Query, items: Sequence[PageItem]) -> None: ...


class Component:
    kind: ClassVar[ComponentKind]

    def __init__(self, name: str) -> None:
        self.identifier = ComponentIdentifier(self.kind, name)

    @property
    def name(self) -> str:
        return self.identifier.name


class CandidateSource(Component):
    """A named fetcher. `fail_open`: a failing source leaves the page without its candidates
    (reported in `Page.failures`) instead of failing the request: right for optional sources
    such as trending tweets, wrong for the viewer's own timeline."""

    kind = "CandidateSource"

    def __init__(
        self, name: str, source: Source, fetch: CandidateFetcher, reason: str, fail_open: bool = False
    ) -> None:
        super().__init__(name)
        self.source: Source = source
        self.fetch = fetch
        self.reason = reason
        self.fail_open = fail_open


class Filter(Component, ABC):
    kind = "Filter"

    @abstractmethod
    def apply(self, query: Query, viewer: ViewerContext, candidates: Sequence[Candidate]) -> FilterResult:
        """Every candidate ends up in exactly one of `kept` (in input order) or `removed`."""


class Scorer(Component, ABC):
    kind = "Scorer"

    @abstractmethod
    def score(self, query: Query, candidates: Sequence[Candidate]) -> list[ScoreResult]:
        """Exactly one result per candidate, in the candidates' order."""

    def reason(self, query: Query, candidate: Candidate) -> str:
        """Why the candidate's score is what it is, e.g. "predicted like 4%, reply 1%"; asked only
        for the candidates that make the page (a request scores hundreds and shows tens)."""
        return ""


class Selector(Component, ABC):
    kind = "Selector"

    @abstractmethod
    def select(self, query: Query, candidates: Sequence[Candidate]) -> SelectorResult:
        """The candidates in page order, rescaled or reordered; dropped ones with a reason."""


class SideEffect(Component):
    """Runs after the page is built (e.g. record what was served); a failure does not fail the
    request, it is reported in `Page.failures`."""

    kind = "SideEffect"

    def __init__(self, name: str, recorder: ServedRecorder) -> None:
        super().__init__(name)
        self.recorder = recorder

    async def run(self, query: Query, items: Sequence[PageItem]) -> None:
        await self.recorder.record_served(query, items)
