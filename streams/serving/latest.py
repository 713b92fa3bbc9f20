"""What a latest read's Redis work answers, on one Redis (`latest_page.lua`) or on a cluster
(`cluster_latest`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LatestCandidates:
    """What a latest page is merged from: the newest candidates of all sources together below
    `max_id`, by source, the author and text of each one the tweet store still has, and the like
    count of each one liked. `more`: there may be older candidates than these."""

    pushed: list[int]
    pulled: dict[int, list[int]]
    hidden: set[int]
    tweets: dict[int, tuple[int, str]]
    likes: dict[int, int]
    more: bool


@dataclass(frozen=True)
class Rebuild:
    """The home timeline is missing or the user was inactive: rebuilt from these, then read."""

    following: set[int]
    celebrities: set[int]
