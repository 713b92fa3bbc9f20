"""The read path's rules for `latest` timelines, as pure functions: no I/O, no clock.

A home timeline page is the union of two candidate sources, after Twitter's hybrid fanout: tweets
pushed into the user's materialised timeline (`streams.timelines.cache`) and tweets pulled at read
time from the celebrities the user follows. `merge_timeline` dedups, filters and cuts that union;
the caller fetches the candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

DAY_MS: Final = 86_400_000

Source = Literal["push", "pull"]
# Why a candidate was left out of a page; the keys of `TimelinePage.removed`.
RemovalReason = Literal["deleted", "hidden_author", "unknown_author"]


@dataclass(frozen=True, slots=True)
class TimelineItem:
    tweet_id: int
    author_id: int
    source: Source


@dataclass(frozen=True, slots=True)
class TimelinePage:
    """One page, newest first, and where the next page starts.

    `next_max_id` is the smallest returned id when the page is full (pass it as the next request's
    `max_id`), None when fewer than `limit` items were available. `removed` names the candidates
    newer than the page's end (all of them, for a short page) that the filters left out, and why.
    """

    items: list[TimelineItem]
    next_max_id: int | None
    removed: dict[int, RemovalReason] = field(default_factory=dict)


def hidden_authors(
    blocked_by_user: set[int], blockers_of_user: set[int], muted_by_user: set[int]
) -> set[int]:
    """Authors whose tweets a user does not see: a block hides both ways, a mute only the muted."""
    return blocked_by_user | blockers_of_user | muted_by_user


def is_active(last_active_ms: int | None, now_ms: int, active_days: int) -> bool:
    """Whether a user active at `last_active_ms` counts as active at `now_ms` (event time).

    Inclusive of the boundary. Activity later than `now_ms` (events out of order, replays) counts
    as active: the user is plainly around. Never seen (None) is inactive.
    """
    return last_active_ms is not None and now_ms - last_active_ms <= active_days * DAY_MS


def merge_timeline(
    pushed: Sequence[int],
    pulled: Mapping[int, Sequence[int]],
    limit: int,
    max_id: int | None,
    hidden_authors: set[int],
    deleted: set[int],
    author_of: Mapping[int, int],
) -> TimelinePage:
    """Merge pushed and pulled candidates into one page, newest first by tweet id.

    `pushed` are tweet ids from the materialised timeline, `pulled` maps each celebrity author to
    their tweet ids; `author_of` gives the authors of pushed tweets. Candidates at or above
    `max_id` are out; the rest are deduplicated (a tweet both pushed and pulled is "push"),
    filtered (deleted tweets, hidden authors, and pushed tweets whose author is unknown, which the
    tweet store no longer has) and cut to `limit`.

    Each source must offer its newest `limit` candidates below `max_id`, or more: when filters
    remove candidates a page can come out short, and a short page ends paging (`next_max_id` is
    None), so callers over-fetch by what they expect the filters to take.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")

    def below(tweet_id: int) -> bool:
        return max_id is None or tweet_id < max_id

    candidates: dict[int, tuple[int | None, Source]] = {}
    for tweet_id in pushed:
        if below(tweet_id):
            candidates[tweet_id] = (author_of.get(tweet_id), "push")
    for celebrity, tweet_ids in pulled.items():
        for tweet_id in tweet_ids:
            if not below(tweet_id):
                continue
            known = candidates.get(tweet_id)
            if known is None:
                candidates[tweet_id] = (celebrity, "pull")
            elif known[0] is None:
                candidates[tweet_id] = (celebrity, "push")

    items: list[TimelineItem] = []
    removed: dict[int, RemovalReason] = {}
    for tweet_id in sorted(candidates, reverse=True):
        if len(items) == limit:
            break
        author_id, source = candidates[tweet_id]
        if tweet_id in deleted:
            removed[tweet_id] = "deleted"
        elif author_id is None:
            removed[tweet_id] = "unknown_author"
        elif author_id in hidden_authors:
            removed[tweet_id] = "hidden_author"
        else:
            items.append(TimelineItem(tweet_id, author_id, source))
    next_max_id = items[-1].tweet_id if len(items) == limit else None
    return TimelinePage(items, next_max_id, removed)
