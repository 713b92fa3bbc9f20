"""The ranked mixer's selectors: Twitter's heuristics after the heavy ranker.

Selectors take candidates in page order and return them in page order. The rescaling ones change
`score` in place and re-sort (stably); `scale` keeps a multiplier's meaning for negative scores,
where multiplying by 0.25 would lift a candidate the ranker expects complaints about.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import Final

from streams.mixer.components import Candidate, Query, Selector, SelectorResult

# Twitter's author diversity: an author's n-th candidate (n from 0) is scaled by
# (1 - FLOOR) * DECAY**n + FLOOR: 1, 0.625, 0.4375, ... never below a quarter.
AUTHOR_DIVERSITY_FLOOR: Final = 0.25
AUTHOR_DIVERSITY_DECAY: Final = 0.5
# Twitter's rule: at most 2 out-of-network tweets in a row.
MAX_OUT_OF_NETWORK_IN_ROW: Final = 2
# Trending boost: score * (1 + FACTOR * signal boost), at most x MAX. A signal's weight is one
# "unit" of news; ten units of (24h-decayed) signal double a tweet's score, and nothing more does.
TRENDING_BOOST_FACTOR: Final = 0.1
TRENDING_MAX_MULTIPLIER: Final = 2.0
# A tweet shown again is engaged with far less than a new one; a quarter of its score puts
# it below almost every new candidate while it still fills a page that has nothing new.
SERVED_BEFORE_FACTOR: Final = 0.25


def scale(score: float, factor: float) -> float:
    """Moves `score` the way `factor` means (> 1 up, < 1 down) whatever the score's sign."""
    if factor <= 0:
        raise ValueError(f"a score factor must be > 0, got {factor}")
    return score * factor if score >= 0 else score / factor


_SCORE = operator.attrgetter("score")


def by_score(candidates: Sequence[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=_SCORE, reverse=True)


def _resorted(candidates: Sequence[Candidate], rescaled: bool) -> SelectorResult:
    # Candidates come in page order: only a rescaling can have changed it.
    return SelectorResult(by_score(candidates) if rescaled else list(candidates))


def author_diversity_multiplier(n: int, floor: float = AUTHOR_DIVERSITY_FLOOR) -> float:
    return (1.0 - floor) * AUTHOR_DIVERSITY_DECAY**n + floor


@functools.lru_cache(maxsize=1024)
def _diversity_reason(n: int, multiplier: float) -> str:
    # Hundreds of candidates per request get one of a few dozen distinct reasons.
    return f"author's tweet #{n + 1} here, x{multiplier:.2f}"


class AuthorDiversitySelector(Selector):
    """Scales each author's n-th best candidate by `author_diversity_multiplier(n)`, re-sorts."""

    def __init__(self, floor: float = AUTHOR_DIVERSITY_FLOOR, name: str = "AuthorDiversity") -> None:
        super().__init__(name)
        self.floor = floor

    def select(self, query: Query, candidates: Sequence[Candidate]) -> SelectorResult:
        seen: dict[int, int] = {}
        for c in by_score(candidates):
            n = seen.get(c.author_id, 0)
            seen[c.author_id] = n + 1
            if n:
                m = author_diversity_multiplier(n, self.floor)
                c.score = scale(c.score, m)
                c.reasons.append(_diversity_reason(n, m))
        return SelectorResult(by_score(candidates))


class TrendingBoostSelector(Selector):
    """Scales by 1 + factor * signal boost (capped): real-time signals outrank slow counts."""

    def __init__(
        self,
        factor: float = TRENDING_BOOST_FACTOR,
        max_multiplier: float = TRENDING_MAX_MULTIPLIER,
        name: str = "TrendingBoost",
    ) -> None:
        super().__init__(name)
        self.factor = factor
        self.max_multiplier = max_multiplier

    def multiplier(self, signal_boost: float) -> float:
        return min(1.0 + self.factor * max(0.0, signal_boost), self.max_multiplier)

    def select(self, query: Query, candidates: Sequence[Candidate]) -> SelectorResult:
        rescaled = False
        for c in candidates:
            if c.features.signal_boost <= 0.0:
                continue
            m = self.multiplier(c.features.signal_boost)
            if m > 1.0:
                c.score = scale(c.score, m)
                c.reasons.append(f"trending boost x{m:.2f}")
                rescaled = True
        return _resorted(candidates, rescaled)


class ServedBeforeSelector(Selector):
    """Scales a tweet served to the viewer before by `factor` (only fresh requests have any:
    paging requests drop them, `PreviouslyServedFilter`): it stays on the page only when nothing
    new outranks it, so a refresh shows what is new first and a user with little new content still
    sees a full page. X's home mixer drops posts the client reports seen; there is no seen report
    here, and the contract lets a fresh request show a served tweet again."""

    def __init__(self, factor: float = SERVED_BEFORE_FACTOR, name: str = "ServedBefore") -> None:
        super().__init__(name)
        if not 0.0 < factor <= 1.0:
            raise ValueError(f"factor must be in (0, 1], got {factor}")
        self.factor = factor
        self.reason = f"served before, x{factor:.2f}"

    def select(self, query: Query, candidates: Sequence[Candidate]) -> SelectorResult:
        rescaled = False
        for c in candidates:
            if c.features.served_before:
                c.score = scale(c.score, self.factor)
                c.reasons.append(self.reason)
                rescaled = True
        return _resorted(candidates, rescaled)


class OutOfNetworkSelector(Selector):
    """Keeps the order but never lets more than `max_in_row` out-of-network tweets run: the best
    remaining in-network tweet moves up to break a run. When none is left, the rest of a run
    cannot be placed and is dropped (usually far below the page limit)."""

    def __init__(self, max_in_row: int = MAX_OUT_OF_NETWORK_IN_ROW, name: str = "OutOfNetwork") -> None:
        super().__init__(name)
        if max_in_row < 1:
            raise ValueError(f"max_in_row must be >= 1, got {max_in_row}")
        self.max_in_row = max_in_row

    def select(self, query: Query, candidates: Sequence[Candidate]) -> SelectorResult:
        remaining = list(candidates)
        selected: list[Candidate] = []
        run = 0
        while remaining:
            i = 0
            if run >= self.max_in_row and not remaining[0].in_network:
                i = next((j for j, c in enumerate(remaining) if c.in_network), -1)
                if i < 0:
                    why = f"more than {self.max_in_row} out-of-network in a row and no in-network left"
                    return SelectorResult(selected, {c.tweet_id: why for c in remaining})
                remaining[i].reasons.append(f"moved up: at most {self.max_in_row} out-of-network in a row")
            c = remaining.pop(i)
            selected.append(c)
            run = 0 if c.in_network else run + 1
        return SelectorResult(selected)
