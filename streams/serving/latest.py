"""What a latest read's Redis work answers, on one Redis (`latest_page.lua`) or on a cluster
(`cluster_latest`)."""

from __future__ import annotations

from dataclasses import dataclass

from streams.timelines.rules import merge_timeline

# One item of a page: (tweet_id, author_id, pushed, text, like_count). A tuple, not an object:
# a read builds fifty of them, and their cost showed in the read path's profile.
PageRow = tuple[int, int, bool, str, int]


@dataclass(frozen=True, slots=True)
class LatestPage:
    """A latest page as `merge_timeline` cuts it from the newest `want` candidates of all sources,
    newest first, at most `limit` rows. `more`: there are older candidates than those, so a page
    the filters left short may fill from a larger read."""

    rows: list[PageRow]
    more: bool


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

    def page(self, limit: int, max_id: int | None) -> LatestPage:
        """The page `latest_page.lua` cuts from the same candidates."""
        candidates = [*self.pushed, *(t for ids in self.pulled.values() for t in ids)]
        merged = merge_timeline(
            self.pushed,
            self.pulled,
            limit,
            max_id,
            hidden_authors=self.hidden,
            deleted={t for t in candidates if t not in self.tweets},
            author_of={t: author for t, (author, _) in self.tweets.items()},
        )
        rows = [
            (
                item.tweet_id,
                item.author_id,
                item.source == "push",
                self.tweets[item.tweet_id][1],
                self.likes.get(item.tweet_id, 0),
            )
            for item in merged.items
        ]
        return LatestPage(rows, self.more)


@dataclass(frozen=True)
class Rebuild:
    """The home timeline is missing or the user was inactive: rebuilt from these, then read."""

    following: set[int]
    celebrities: set[int]
