from __future__ import annotations

import random

import pytest

from streams.mixer.components import Candidate
from streams.mixer.selectors import (
    AuthorDiversitySelector,
    OutOfNetworkSelector,
    ServedBeforeSelector,
    TrendingBoostSelector,
    author_diversity_multiplier,
    scale,
)
from tests.unit.mixer.factories import candidate, ids, query


def test_author_diversity_multipliers_follow_twitters_formula() -> None:
    # (1 - 0.25) * 0.5**n + 0.25
    assert [author_diversity_multiplier(n) for n in range(4)] == [1.0, 0.625, 0.4375, 0.34375]


def test_author_diversity_scales_each_authors_nth_candidate_and_resorts() -> None:
    a1, a2, a3 = candidate(1, 7, score=10.0), candidate(2, 7, score=8.0), candidate(3, 7, score=6.0)
    b1 = candidate(4, 8, score=9.0)
    result = AuthorDiversitySelector().select(query(), [a1, a2, a3, b1])
    assert ids(result.selected) == [1, 4, 2, 3]
    assert [c.score for c in result.selected] == [10.0, 9.0, 8.0 * 0.625, 6.0 * 0.4375]
    assert result.dropped == {}
    assert a1.reasons == [] and b1.reasons == []
    assert a2.reasons == ["author's tweet #2 here, x0.62"]


def test_author_diversity_counts_positions_by_score_not_input_order() -> None:
    low, high = candidate(1, 7, score=1.0), candidate(2, 7, score=5.0)
    AuthorDiversitySelector().select(query(), [low, high])
    assert (high.score, low.score) == (5.0, 0.625)


def test_a_demoting_factor_still_demotes_a_negative_score() -> None:
    assert scale(-8.0, 0.5) == -16.0
    assert scale(-8.0, 2.0) == -4.0
    assert scale(8.0, 0.5) == 4.0
    with pytest.raises(ValueError):
        scale(1.0, 0.0)


def _longest_oon_run(cs: list[Candidate]) -> int:
    longest = run = 0
    for c in cs:
        run = 0 if c.in_network else run + 1
        longest = max(longest, run)
    return longest


def test_out_of_network_selector_breaks_runs_with_the_next_in_network_tweet() -> None:
    pattern = "OOOOIOI"
    cs = [candidate(i, i, in_network=p == "I") for i, p in enumerate(pattern)]
    result = OutOfNetworkSelector().select(query(), cs)
    assert ids(result.selected) == [0, 1, 4, 2, 3, 6, 5]
    assert result.dropped == {}
    assert cs[4].reasons == ["moved up: at most 2 out-of-network in a row"]


def test_out_of_network_selector_drops_only_what_cannot_be_placed() -> None:
    cs = [candidate(i, i, in_network=False) for i in range(4)]
    result = OutOfNetworkSelector().select(query(), cs)
    assert ids(result.selected) == [0, 1]
    assert set(result.dropped) == {2, 3}
    assert "no in-network left" in result.dropped[2]


def test_out_of_network_selector_never_lets_three_run_on_random_pages() -> None:
    rng = random.Random(3)
    for _ in range(300):
        cs = [candidate(i, i, in_network=rng.random() < 0.3) for i in range(rng.randint(0, 30))]
        result = OutOfNetworkSelector().select(query(), cs)
        assert _longest_oon_run(result.selected) <= 2
        assert sorted(ids(result.selected) + list(result.dropped)) == ids(cs)
        # Each kind keeps its relative order; an item is dropped only after the last in-network one.
        for in_network in (True, False):
            kept = [c.tweet_id for c in result.selected if c.in_network == in_network]
            assert kept == sorted(kept)
        assert all(not c.in_network for c in cs if c.tweet_id in result.dropped)
        if result.dropped:
            assert sum(c.in_network for c in result.selected) == sum(c.in_network for c in cs)


def test_trending_boost_scales_by_one_plus_factor_times_boost_with_a_cap() -> None:
    plain = candidate(1, score=10.0)
    trending = candidate(2, score=10.0, signal_boost=3.0)
    huge = candidate(3, score=10.0, signal_boost=50.0)
    disliked = candidate(4, score=-10.0, signal_boost=3.0)
    result = TrendingBoostSelector(factor=0.1, max_multiplier=2.0).select(
        query(), [plain, trending, huge, disliked]
    )
    assert ids(result.selected) == [3, 2, 1, 4]
    assert huge.score == 20.0
    assert trending.score == pytest.approx(13.0)
    assert plain.score == 10.0 and plain.reasons == []
    assert disliked.score == pytest.approx(-10.0 / 1.3)
    assert trending.reasons == ["trending boost x1.30"]


def test_served_before_demotes_below_new_tweets_but_keeps_them() -> None:
    seen = candidate(1, score=10.0, served_before=True)
    new, weak = candidate(2, score=3.0), candidate(3, score=2.0)
    negative_seen = candidate(4, score=-1.0, served_before=True)
    result = ServedBeforeSelector().select(query(), [seen, new, weak, negative_seen])
    assert ids(result.selected) == [2, 1, 3, 4] and result.dropped == {}
    assert (seen.score, negative_seen.score) == (2.5, -4.0)
    assert seen.reasons == ["served before, x0.25"] and new.reasons == []
    with pytest.raises(ValueError):
        ServedBeforeSelector(factor=0.0)
