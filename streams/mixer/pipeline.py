"""The ranked pipeline: a config that is only the ordered list of its components, and the runner.

    sources (concurrently, with the viewer's context) -> merge (first source wins a tweet)
      -> hydrate (one call) -> filters -> scorer -> selectors -> take `limit` -> side effects

The runner checks every component's contract (a filter partitions its input, the scorer returns
one result per candidate, a selector loses nothing silently) and raises `PipelineError` when one
is broken: a broken component is a bug, not a smaller page.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.mixer.components import (
    Candidate,
    CandidateFetcher,
    CandidateSource,
    Filter,
    Hydrator,
    PageItem,
    Query,
    Removal,
    Scorer,
    Selector,
    ServedRecorder,
    SideEffect,
    SourceItem,
    ViewerContext,
)
from streams.mixer.engagement_model import ScoringModel
from streams.mixer.filters import (
    BlockedOrMutedFilter,
    DeletedFilter,
    NotInterestedAuthorFilter,
    PreviouslyServedFilter,
    RetweetDuplicateFilter,
)
from streams.mixer.scorers import EngagementScorer
from streams.mixer.selectors import (
    AuthorDiversitySelector,
    OutOfNetworkSelector,
    ServedBeforeSelector,
    TrendingBoostSelector,
    by_score,
)


class PipelineError(RuntimeError):
    """A component broke its contract."""


@dataclass(frozen=True)
class RankedPipelineConfig:
    # Candidate sources, in precedence order: a tweet two sources propose keeps the first's reason.
    sources: Sequence[CandidateSource]
    # Reads the viewer's context and every candidate's features.
    hydrator: Hydrator
    # In order; each sees only what the ones before it kept.
    filters: Sequence[Filter]
    scorer: Scorer
    # In order, on candidates sorted by score.
    selectors: Sequence[Selector]
    # After the page is taken; failures are reported, not raised.
    side_effects: Sequence[SideEffect]


def ranked_pipeline_config(
    *,
    timeline: CandidateFetcher,
    celebrities: CandidateFetcher,
    trending: CandidateFetcher,
    hydrator: Hydrator,
    recorder: ServedRecorder,
    model: ScoringModel | None = None,
) -> RankedPipelineConfig:
    """The home mixer's ranked mode. RetweetDuplicate runs first so that it keeps the original
    over a retweet; the filters after it then judge the original (deleted, blocked author,
    served before), and a retweet never brings back what they removed."""
    return RankedPipelineConfig(
        sources=[
            CandidateSource("PushedTimeline", "push", timeline, "followed author"),
            CandidateSource("CelebrityPull", "pull", celebrities, "followed author"),
            CandidateSource("Trending", "trending", trending, "trending", fail_open=True),
        ],
        hydrator=hydrator,
        filters=[
            RetweetDuplicateFilter(),
            DeletedFilter(),
            BlockedOrMutedFilter(),
            NotInterestedAuthorFilter(),
            PreviouslyServedFilter(),
        ],
        scorer=EngagementScorer(model or ScoringModel()),
        selectors=[
            TrendingBoostSelector(),
            ServedBeforeSelector(),
            AuthorDiversitySelector(),
            OutOfNetworkSelector(),
        ],
        side_effects=[SideEffect("RecordServed", recorder)],
    )


@dataclass(frozen=True)
class Page:
    user_id: int
    bucket: str
    strategy: str
    items: list[PageItem]
    # tweet id -> which filter or selector removed it, and why
    removed: dict[int, Removal] = field(default_factory=dict)
    # component identifier -> error, for fail-open sources and side effects that failed
    failures: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "bucket": self.bucket,
            "strategy": self.strategy,
            "items": [item.to_json() for item in self.items],
            "removed": {str(t): {"by": r.component, "reason": r.reason} for t, r in self.removed.items()},
            "failures": dict(self.failures),
        }


def _splits(before: Sequence[Candidate], kept: Sequence[Candidate], removed: Collection[int]) -> bool:
    """Whether every candidate of `before` is in exactly one of `kept` and `removed`, and nothing
    else is. Checked after every filter and selector: sets, not sorting (the sorts cost ~1 ms of a
    500-candidate request), and not even sets when the component kept everything as it was, what
    most of them do for most requests."""
    if not removed and len(kept) == len(before) and all(map(operator.is_, kept, before)):
        return True
    ids = {c.tweet_id for c in before}
    kept_ids = {c.tweet_id for c in kept}
    return (
        len(kept_ids) + len(removed) == len(ids)
        and len(kept_ids) == len(kept)
        and kept_ids <= ids
        and ids.issuperset(removed)
        and kept_ids.isdisjoint(removed)
    )


def _page_item(c: Candidate, score_reason: str) -> PageItem:
    reason = "; ".join(r for r in (c.source_reason, score_reason, *c.reasons) if r)
    return PageItem(
        c.tweet_id, c.author_id, c.source, c.in_network, c.score, reason, c.predictions, c.raw_predictions
    )


class RankedPipeline:
    def __init__(self, config: RankedPipelineConfig) -> None:
        self.config = config

    async def _fetch(
        self, source: CandidateSource, query: Query, failures: dict[str, str]
    ) -> Sequence[SourceItem]:
        try:
            return await source.fetch(query)
        except Exception as e:
            if not source.fail_open:
                raise
            failures[str(source.identifier)] = repr(e)
            return []

    async def _fetch_all(self, query: Query, failures: dict[str, str]) -> list[Sequence[SourceItem]]:
        return list(await asyncio.gather(*(self._fetch(s, query, failures) for s in self.config.sources)))

    async def _candidates(
        self, query: Query, failures: dict[str, str]
    ) -> tuple[ViewerContext, list[Candidate]]:
        sources = self.config.sources
        viewer, fetched = await asyncio.gather(
            self.config.hydrator.hydrate_viewer(query), self._fetch_all(query, failures)
        )
        merged: dict[int, tuple[SourceItem, CandidateSource]] = {}
        for source, items in zip(sources, fetched, strict=True):
            for item in items:
                merged.setdefault(item.tweet_id, (item, source))
        pairs = list(merged.values())
        features = await self.config.hydrator.hydrate(query, viewer, [item for item, _ in pairs])
        if [f.tweet_id for f in features] != [item.tweet_id for item, _ in pairs]:
            raise PipelineError("the hydrator must return one CandidateFeatures per item, in order")
        candidates = [
            Candidate(item.tweet_id, f.author_id, s.source, f, source_reason=item.reason or s.reason)
            for (item, s), f in zip(pairs, features, strict=True)
        ]
        return viewer, candidates

    def _score(self, query: Query, candidates: list[Candidate]) -> list[Candidate]:
        results = self.config.scorer.score(query, candidates)
        if len(results) != len(candidates):
            raise PipelineError(
                f"{self.config.scorer.identifier} returned {len(results)} results for {len(candidates)}"
            )
        for c, r in zip(candidates, results, strict=True):
            c.score = r.score
            c.predictions = r.predictions
            c.raw_predictions = r.raw_predictions
        return by_score(candidates)

    async def run(self, query: Query) -> Page:
        """The page, its side effects done."""
        page = await self.page(query)
        await self.side_effects(query, page)
        return page

    async def page(self, query: Query) -> Page:
        """The page, before its side effects: a caller may overlap them with its own reads
        (`side_effects`)."""
        failures: dict[str, str] = {}
        removed: dict[int, Removal] = {}
        viewer, candidates = await self._candidates(query, failures)
        for f in self.config.filters:
            result = f.apply(query, viewer, candidates)
            if not _splits(candidates, result.kept, result.removed):
                raise PipelineError(f"{f.identifier} did not partition its input into kept and removed")
            removed.update((t, Removal(f.name, why)) for t, why in result.removed.items())
            candidates = result.kept
        candidates = self._score(query, candidates)
        for s in self.config.selectors:
            selection = s.select(query, candidates)
            if not _splits(candidates, selection.selected, selection.dropped):
                raise PipelineError(f"{s.identifier} lost or invented candidates")
            removed.update((t, Removal(s.name, why)) for t, why in selection.dropped.items())
            candidates = selection.selected
        scorer = self.config.scorer
        items = [_page_item(c, scorer.reason(query, c)) for c in candidates[: query.limit]]
        return Page(query.user_id, query.bucket, query.strategy, items, removed, failures)

    async def side_effects(self, query: Query, page: Page) -> None:
        """Run the side effects on the page; a failing one is reported in `page.failures`."""
        effects = self.config.side_effects
        outcomes = await asyncio.gather(*(e.run(query, page.items) for e in effects), return_exceptions=True)
        for effect, outcome in zip(effects, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome
                page.failures[str(effect.identifier)] = repr(outcome)
