from __future__ import annotations

import pytest

from streams.mixer.components import ComponentIdentifier, ViewerContext
from streams.mixer.filters import (
    BlockedOrMutedFilter,
    DeletedFilter,
    NotInterestedAuthorFilter,
    PreviouslyServedFilter,
    RetweetDuplicateFilter,
)
from tests.unit.mixer.factories import candidate, ids, query

NOBODY = ViewerContext()


def test_deleted_filter_keeps_order_and_names_the_deleted() -> None:
    cs = [candidate(1), candidate(2, deleted=True), candidate(3)]
    result = DeletedFilter().apply(query(), NOBODY, cs)
    assert ids(result.kept) == [1, 3]
    assert result.removed == {2: "tweet deleted"}


def test_blocked_or_muted_filter_says_which() -> None:
    viewer = ViewerContext(blocked=frozenset({10}), muted=frozenset({20}))
    cs = [candidate(1, 10), candidate(2, 20), candidate(3, 30)]
    result = BlockedOrMutedFilter().apply(query(), viewer, cs)
    assert ids(result.kept) == [3]
    assert result.removed == {1: "author blocked", 2: "author muted"}


def test_previously_served_filter_applies_only_when_paging() -> None:
    viewer = ViewerContext()
    cs = [candidate(1, served_before=True), candidate(2), candidate(3, served_before=True)]
    first_page = PreviouslyServedFilter().apply(query(max_id=None), viewer, cs)
    assert ids(first_page.kept) == [1, 2, 3] and first_page.removed == {}
    next_page = PreviouslyServedFilter().apply(query(max_id=99), viewer, cs)
    assert ids(next_page.kept) == [2]
    assert next_page.removed == {1: "previously served", 3: "previously served"}


def test_retweet_duplicate_filter_prefers_the_original() -> None:
    cs = [candidate(11, 2, retweet_of=1), candidate(1, 1), candidate(12, 3, retweet_of=1), candidate(5, 4)]
    result = RetweetDuplicateFilter().apply(query(), NOBODY, cs)
    assert ids(result.kept) == [1, 5]
    assert result.removed == {
        11: "retweet of 1, which is also a candidate",
        12: "retweet of 1, which is also a candidate",
    }


def test_retweet_duplicate_filter_keeps_the_first_retweet_of_an_absent_original() -> None:
    cs = [candidate(5, 4), candidate(21, 2, retweet_of=7), candidate(22, 3, retweet_of=7)]
    result = RetweetDuplicateFilter().apply(query(), NOBODY, cs)
    assert ids(result.kept) == [5, 21]
    assert result.removed == {22: "another retweet of 7 is kept (21)"}


def test_not_interested_author_filter() -> None:
    viewer = ViewerContext(not_interested=frozenset({9}))
    cs = [candidate(1, 9), candidate(2, 8), candidate(3, 9)]
    result = NotInterestedAuthorFilter().apply(query(), viewer, cs)
    assert ids(result.kept) == [2]
    assert result.removed == {1: "viewer not interested in author", 3: "viewer not interested in author"}


def test_filters_have_camel_case_identifiers() -> None:
    assert str(DeletedFilter().identifier) == "Filter:Deleted"
    assert BlockedOrMutedFilter().name == "BlockedOrMuted"
    for bad in ("deleted", "Blocked-Muted", "", "Has Space", "Ünicode"):
        with pytest.raises(ValueError):
            ComponentIdentifier("Filter", bad)
    with pytest.raises(ValueError):
        DeletedFilter(name="not_camel")
