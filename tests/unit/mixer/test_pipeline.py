from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pytest

from streams.mixer.components import (
    Candidate,
    CandidateFetcher,
    CandidateSource,
    Filter,
    FilterResult,
    PageItem,
    Query,
    Selector,
    SelectorResult,
    SourceItem,
    ViewerContext,
)
from streams.mixer.engagement_model import TWITTER_WEIGHTS, ScoringModel, predict, score
from streams.mixer.features import CandidateFeatures, EntityCounts
from streams.mixer.pipeline import (
    Page,
    PipelineError,
    RankedPipeline,
    RankedPipelineConfig,
    ranked_pipeline_config,
)
from tests.unit.mixer.factories import NOW_MS

VIEWER = 42
FOLLOWING = frozenset({1, 2, 3, 4})


def _f(
    tweet_id: int,
    author_id: int,
    likes: float = 1.0,
    replies: float = 0.0,
    retweet_of: int | None = None,
    signal_boost: float = 0.0,
) -> CandidateFeatures:
    counts = EntityCounts({"like": likes, "reply": replies, "click": 2.0}, 40.0)
    return CandidateFeatures(
        tweet_id=tweet_id,
        author_id=author_id,
        in_network=False,
        retweet_of=retweet_of,
        tweet=counts,
        signal_boost=signal_boost,
    )


TWEETS = {
    f.tweet_id: f
    for f in [
        _f(101, 1, likes=8.0),
        _f(102, 1, likes=7.0),
        _f(103, 1, likes=6.0),
        _f(104, 2, replies=3.0),
        _f(105, 2, retweet_of=201),
        _f(108, 4, likes=9.0),
        _f(301, 3, likes=5.0),
        _f(302, 3),
        _f(201, 9, replies=4.0, signal_boost=5.0),
        _f(202, 10, replies=4.0, signal_boost=2.0),
        _f(203, 11, replies=4.0),
        _f(204, 12, replies=4.0),
        _f(205, 13, replies=4.0),
    ]
}


class FakeHydrator:
    def __init__(self, served: frozenset[int] = frozenset()) -> None:
        self.served = served
        self.calls = 0

    async def hydrate_viewer(self, query: Query) -> ViewerContext:
        return ViewerContext(
            following=FOLLOWING,
            muted=frozenset({4}),
            not_interested=frozenset({11}),
        )

    async def hydrate(
        self, query: Query, viewer: ViewerContext, items: Sequence[SourceItem]
    ) -> Sequence[CandidateFeatures]:
        self.calls += 1
        out = []
        for item in items:
            f = TWEETS.get(item.tweet_id)
            out.append(
                CandidateFeatures.deleted_tweet(item.tweet_id)
                if f is None
                else f._replace(
                    in_network=f.author_id in viewer.following, served_before=item.tweet_id in self.served
                )
            )
        return out


def _fetcher(*tweet_ids: int, reason: str = "", fail: bool = False) -> CandidateFetcher:
    async def fetch(query: Query) -> Sequence[SourceItem]:
        if fail:
            raise ConnectionError("redis down")
        return [SourceItem(t, reason=reason) for t in tweet_ids]

    return fetch


@dataclass
class Recorder:
    calls: list[tuple[Query, list[PageItem]]] = field(default_factory=list)
    fail: bool = False

    async def record_served(self, query: Query, items: Sequence[PageItem]) -> None:
        if self.fail:
            raise TimeoutError("redis slow")
        self.calls.append((query, list(items)))


def _config(
    hydrator: FakeHydrator | None = None, recorder: Recorder | None = None, trending_fails: bool = False
) -> RankedPipelineConfig:
    return ranked_pipeline_config(
        timeline=_fetcher(101, 102, 103, 104, 105, 106, 108),
        celebrities=_fetcher(301, 302),
        trending=_fetcher(
            201, 202, 203, 204, 205, 101, reason="trending: breaking news", fail=trending_fails
        ),
        hydrator=hydrator or FakeHydrator(),
        recorder=recorder or Recorder(),
    )


def _run(config: RankedPipelineConfig, limit: int = 20, max_id: int | None = None) -> Page:
    query = Query(VIEWER, limit, max_id, NOW_MS, bucket="adaptive", strategy="twitter")
    return asyncio.run(RankedPipeline(config).run(query))


def test_a_ranked_page_end_to_end() -> None:
    recorder = Recorder()
    hydrator = FakeHydrator()
    page = _run(_config(hydrator, recorder))
    assert hydrator.calls == 1
    assert {t: (r.component, r.reason) for t, r in page.removed.items()} == {
        105: ("RetweetDuplicate", "retweet of 201, which is also a candidate"),
        106: ("Deleted", "tweet deleted"),
        108: ("BlockedOrMuted", "author muted"),
        203: ("NotInterestedAuthor", "viewer not interested in author"),
    }
    served = [item.tweet_id for item in page.items]
    assert sorted(served) == [101, 102, 103, 104, 201, 202, 204, 205, 301, 302]
    by_id = {item.tweet_id: item for item in page.items}
    # 101 came from the timeline first, so the trending duplicate does not change its source.
    assert by_id[101].source == "push" and by_id[101].in_network
    assert by_id[301].source == "pull"
    assert by_id[201].source == "trending" and not by_id[201].in_network
    for item in page.items:
        assert item.reason.startswith(
            "trending: breaking news; predicted"
            if item.source == "trending"
            else "followed author; predicted"
        )
        assert set(item.predictions) == set(TWITTER_WEIGHTS)
        if item.reason.count(";") == 1:  # no selector touched it: the score is the scorer's
            assert item.score == pytest.approx(
                score(predict(TWEETS[item.tweet_id], ScoringModel()), TWITTER_WEIGHTS)
            )
    assert "trending boost x1.50" in by_id[201].reason
    assert "author's tweet #2 here, x0.62" in by_id[102].reason
    run = 0
    for item in page.items:
        run = 0 if item.in_network else run + 1
        assert run <= 2
    assert recorder.calls == [(recorder.calls[0][0], page.items)]
    assert recorder.calls[0][0].user_id == VIEWER
    assert page.failures == {}
    doc = json.loads(json.dumps(page.to_json()))
    assert doc["bucket"] == "adaptive" and doc["removed"]["106"] == {
        "by": "Deleted",
        "reason": "tweet deleted",
    }
    assert len(doc["items"]) == 10 and {"score", "reason"} <= set(doc["items"][0])


def test_limit_and_paging_remove_what_was_served() -> None:
    first = _run(_config(), limit=3)
    assert len(first.items) == 3
    shown = frozenset(item.tweet_id for item in first.items)
    again = _run(_config(FakeHydrator(served=shown)), limit=3, max_id=min(shown))
    assert shown.isdisjoint(item.tweet_id for item in again.items)
    assert {t for t, r in again.removed.items() if r.component == "PreviouslyServed"} == shown
    # Without max_id (a fresh first page) served tweets are demoted below new ones, not removed.
    fresh = _run(_config(FakeHydrator(served=shown)), limit=3)
    assert shown.isdisjoint(item.tweet_id for item in fresh.items)
    assert not any(r.component == "PreviouslyServed" for r in fresh.removed.values())
    everything = _run(_config(FakeHydrator(served=shown)), limit=100)
    assert shown <= {item.tweet_id for item in everything.items}
    assert all("served before, x0.25" in i.reason for i in everything.items if i.tweet_id in shown)


def test_a_failing_optional_source_or_side_effect_degrades_the_page() -> None:
    page = _run(_config(recorder=Recorder(fail=True), trending_fails=True))
    assert all(item.source != "trending" for item in page.items) and page.items
    assert set(page.failures) == {"CandidateSource:Trending", "SideEffect:RecordServed"}
    assert "redis down" in page.failures["CandidateSource:Trending"]


def test_a_failing_timeline_fails_the_request() -> None:
    config = _config()
    broken = CandidateSource("PushedTimeline", "push", _fetcher(fail=True), "followed author")
    with pytest.raises(ConnectionError):
        _run(replace(config, sources=[broken, *config.sources[1:]]))


class LosingFilter(Filter):
    def apply(self, query: Query, viewer: ViewerContext, candidates: Sequence[Candidate]) -> FilterResult:
        return FilterResult(list(candidates[1:]), {})


class DoubleCountingFilter(Filter):
    """Keeps the first in both halves and loses the last: the counts add up, the sets do not."""

    def apply(self, query: Query, viewer: ViewerContext, candidates: Sequence[Candidate]) -> FilterResult:
        return FilterResult(list(candidates[:-1]), {candidates[0].tweet_id: "both"})


class SwappingFilter(Filter):
    """Keeps a candidate nobody proposed in place of the last: the right count, a wrong id."""

    def apply(self, query: Query, viewer: ViewerContext, candidates: Sequence[Candidate]) -> FilterResult:
        return FilterResult([*candidates[:-1], replace(candidates[0], tweet_id=999_999)], {})


class RepeatingSelector(Selector):
    """Shows the first candidate twice and drops the last: every id is accounted for, one twice."""

    def select(self, query: Query, candidates: Sequence[Candidate]) -> SelectorResult:
        return SelectorResult([candidates[0], *candidates[:-1]], {candidates[-1].tweet_id: "no room"})


class InventingSelector(Selector):
    """Drops the last candidate under an id nobody proposed."""

    def select(self, query: Query, candidates: Sequence[Candidate]) -> SelectorResult:
        return SelectorResult(list(candidates[:-1]), {999_999: "invented"})


class ShortHydrator(FakeHydrator):
    async def hydrate(
        self, query: Query, viewer: ViewerContext, items: Sequence[SourceItem]
    ) -> Sequence[CandidateFeatures]:
        return list(await super().hydrate(query, viewer, items))[1:]


def test_broken_contracts_raise() -> None:
    config = _config()
    with pytest.raises(PipelineError, match="Filter:Losing did not partition"):
        _run(replace(config, filters=[LosingFilter("Losing")]))
    with pytest.raises(PipelineError, match="one CandidateFeatures per item"):
        _run(replace(config, hydrator=ShortHydrator()))
    for broken in (DoubleCountingFilter("DoubleCounting"), SwappingFilter("Swapping")):
        with pytest.raises(PipelineError, match=f"{broken.identifier} did not partition"):
            _run(replace(config, filters=[broken]))
    for selector in (RepeatingSelector("Repeating"), InventingSelector("Inventing")):
        with pytest.raises(PipelineError, match=f"{selector.identifier} lost or invented"):
            _run(replace(config, selectors=[selector]))
