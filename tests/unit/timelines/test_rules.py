"""The read path's pure rules, each against a brute-force reference on random inputs."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import pytest

from streams.timelines.rules import (
    DAY_MS,
    TimelineItem,
    TimelinePage,
    hidden_authors,
    is_active,
    merge_timeline,
)

CASES = 2000


@dataclass
class Case:
    pushed: list[int]
    pulled: dict[int, list[int]]
    limit: int
    max_id: int | None
    hidden: set[int]
    deleted: set[int]
    author_of: dict[int, int]

    def merge(self) -> TimelinePage:
        return merge_timeline(
            self.pushed, self.pulled, self.limit, self.max_id, self.hidden, self.deleted, self.author_of
        )

    def candidates(self) -> set[int]:
        every = set(self.pushed) | {t for ts in self.pulled.values() for t in ts}
        return {t for t in every if self.max_id is None or t < self.max_id}


def reference_merge(case: Case) -> list[TimelineItem]:
    """Everything that could be shown, sorted, then the first `limit`: no early stops, no dicts."""
    shown = []
    for tweet_id in sorted(case.candidates(), reverse=True):
        if tweet_id in case.deleted:
            continue
        pulled_by = [a for a, ts in case.pulled.items() if tweet_id in ts]
        author = case.author_of.get(tweet_id) if tweet_id in case.pushed else None
        if author is None and pulled_by:
            author = pulled_by[0]
        if author is None or author in case.hidden:
            continue
        shown.append(TimelineItem(tweet_id, author, "push" if tweet_id in case.pushed else "pull"))
    return shown[: case.limit]


def random_case(rng: random.Random) -> Case:
    authors = list(range(1, rng.randint(2, 12)))
    tweets = rng.sample(range(1, 400), rng.randint(0, 120))
    # Every tweet has one author; celebrities' tweets are pulled, and some are also pushed (a
    # follower materialised before the author crossed the threshold).
    author_of_all = {t: rng.choice(authors) for t in tweets}
    celebrities = set(rng.sample(authors, rng.randint(0, len(authors) - 1)))
    pulled: dict[int, list[int]] = {a: [] for a in celebrities}
    pushed: list[int] = []
    for t, a in author_of_all.items():
        if a in celebrities:
            pulled[a].append(t)
            if rng.random() < 0.1:
                pushed.append(t)
        else:
            pushed.append(t)
    rng.shuffle(pushed)
    return Case(
        pushed=pushed,
        pulled=pulled,
        limit=rng.randint(1, 60),
        max_id=rng.choice([None, rng.randint(1, 420)]),
        hidden=set(rng.sample(authors, rng.randint(0, min(3, len(authors))))),
        deleted=set(rng.sample(tweets, min(len(tweets), rng.randint(0, 10)))),
        # The tweet store has forgotten some pushed tweets.
        author_of={t: a for t, a in author_of_all.items() if rng.random() < 0.95},
    )


def test_merge_timeline_matches_the_brute_force_reference() -> None:
    rng = random.Random(20261121)
    for _ in range(CASES):
        case = random_case(rng)
        page = case.merge()
        expected = reference_merge(case)
        assert page.items == expected, case
        full = len(expected) == case.limit
        assert page.next_max_id == (expected[-1].tweet_id if full else None)
        shown = {item.tweet_id for item in page.items}
        end = page.next_max_id or 0
        assert set(page.removed) == {t for t in case.candidates() - shown if t > end}, (
            "filtered up to the end"
        )


def test_paging_with_next_max_id_walks_everything_once() -> None:
    rng = random.Random(7)
    for _ in range(200):
        case = random_case(rng)
        case.max_id = None
        everything = reference_merge(replace(case, limit=10**6))
        walked: list[TimelineItem] = []
        while True:
            page = case.merge()
            walked += page.items
            if page.next_max_id is None:
                break
            case.max_id = page.next_max_id
        assert walked == everything


def test_merge_timeline_sources_filters_and_limits() -> None:
    page = merge_timeline(
        pushed=[10, 30, 20, 50],
        pulled={7: [40, 30, 60], 8: [55]},
        limit=4,
        max_id=60,
        hidden_authors={8},
        deleted={20},
        author_of={10: 1, 30: 7, 20: 2, 50: 3},
    )
    assert page.items == [
        TimelineItem(50, 3, "push"),
        TimelineItem(40, 7, "pull"),
        TimelineItem(30, 7, "push"),
        TimelineItem(10, 1, "push"),
    ]
    assert page.next_max_id == 10
    assert page.removed == {55: "hidden_author", 20: "deleted"}

    short = merge_timeline(
        [5, 4], {}, limit=3, max_id=None, hidden_authors=set(), deleted=set(), author_of={5: 1}
    )
    assert short.items == [TimelineItem(5, 1, "push")]
    assert short.removed == {4: "unknown_author"}
    assert short.next_max_id is None
    with pytest.raises(ValueError):
        merge_timeline([], {}, limit=0, max_id=None, hidden_authors=set(), deleted=set(), author_of={})


def test_hidden_authors_block_both_ways_mute_one_way() -> None:
    rng = random.Random(3)
    for _ in range(500):
        blocked, blockers, muted = ({rng.randint(1, 20) for _ in range(rng.randint(0, 6))} for _ in range(3))
        hidden = hidden_authors(blocked, blockers, muted)
        for author in range(1, 21):
            assert (author in hidden) == (author in blocked or author in blockers or author in muted)
    assert hidden_authors({1}, {2}, {3}) == {1, 2, 3}


def test_is_active_within_the_window_inclusive() -> None:
    now = 1_700_000_000_000
    assert is_active(now, now, 30)
    assert is_active(now - 30 * DAY_MS, now, 30)
    assert not is_active(now - 30 * DAY_MS - 1, now, 30)
    assert is_active(now + 5_000, now, 30), "activity after the tweet (out of order) counts"
    assert not is_active(None, now, 30)
    assert not is_active(now - 1, now, 0)
    rng = random.Random(11)
    for _ in range(1000):
        days = rng.randint(0, 60)
        last = now - rng.randint(-DAY_MS, 70 * DAY_MS)
        assert is_active(last, now, days) == (last >= now - days * DAY_MS)
