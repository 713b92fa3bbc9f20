"""The ranked mixer's filters: each keeps candidates in order and says why it removed the others."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from streams.mixer.components import Candidate, Filter, FilterResult, Query, ViewerContext


def _partition(candidates: Sequence[Candidate], why: Callable[[Candidate], str | None]) -> FilterResult:
    kept: list[Candidate] = []
    removed: dict[int, str] = {}
    for c in candidates:
        reason = why(c)
        if reason is None:
            kept.append(c)
        else:
            removed[c.tweet_id] = reason
    return FilterResult(kept, removed)


class DeletedFilter(Filter):
    """Tweets the hydrator found gone (`features.deleted`)."""

    def __init__(self, name: str = "Deleted") -> None:
        super().__init__(name)

    def apply(self, query: Query, viewer: ViewerContext, candidates: Sequence[Candidate]) -> FilterResult:
        return _partition(candidates, lambda c: "tweet deleted" if c.features.deleted else None)


class BlockedOrMutedFilter(Filter):
    """Authors the viewer blocked, who blocked the viewer, or whom the viewer muted."""

    def __init__(self, name: str = "BlockedOrMuted") -> None:
        super().__init__(name)

    def apply(self, query: Query, viewer: ViewerContext, candidates: Sequence[Candidate]) -> FilterResult:
        if not viewer.blocked and not viewer.muted:
            return FilterResult(list(candidates), {})

        def why(c: Candidate) -> str | None:
            if c.author_id in viewer.blocked:
                return "author blocked"
            if c.author_id in viewer.muted:
                return "author muted"
            return None

        return _partition(candidates, why)


class PreviouslyServedFilter(Filter):
    """Tweets already served to the viewer, only when paging on (`query.max_id` set): a first page
    may show a tweet again, a next page must not repeat the ones before it."""

    def __init__(self, name: str = "PreviouslyServed") -> None:
        super().__init__(name)

    def apply(self, query: Query, viewer: ViewerContext, candidates: Sequence[Candidate]) -> FilterResult:
        if query.max_id is None:
            return FilterResult(list(candidates), {})
        return _partition(candidates, lambda c: "previously served" if c.features.served_before else None)


class RetweetDuplicateFilter(Filter):
    """One tweet per original: the original itself if it is a candidate, else its first retweet."""

    def __init__(self, name: str = "RetweetDuplicate") -> None:
        super().__init__(name)

    def apply(self, query: Query, viewer: ViewerContext, candidates: Sequence[Candidate]) -> FilterResult:
        present = {c.tweet_id for c in candidates}
        chosen: dict[int, int] = {}  # original id -> the candidate kept for it
        for c in candidates:
            original = c.features.retweet_of
            if original is None:
                chosen[c.tweet_id] = c.tweet_id
            elif original not in present:
                chosen.setdefault(original, c.tweet_id)

        def why(c: Candidate) -> str | None:
            original = c.features.retweet_of
            if original is None or chosen.get(original) == c.tweet_id:
                return None
            if original in present:
                return f"retweet of {original}, which is also a candidate"
            return f"another retweet of {original} is kept ({chosen[original]})"

        return _partition(candidates, why)


class NotInterestedAuthorFilter(Filter):
    """Authors the viewer said `not_interested` in."""

    def __init__(self, name: str = "NotInterestedAuthor") -> None:
        super().__init__(name)

    def apply(self, query: Query, viewer: ViewerContext, candidates: Sequence[Candidate]) -> FilterResult:
        if not viewer.not_interested:
            return FilterResult(list(candidates), {})
        return _partition(
            candidates,
            lambda c: "viewer not interested in author" if c.author_id in viewer.not_interested else None,
        )
