"""Which (viewer, tweet) scores a batch of engagements changes, and the `user_scores` message.

A viewer's own engagement changes two of the features a score reads: the viewer's habits (every
candidate of theirs) and the viewer x author affinity (that author's tweets only). The score
calculator re-scores, per viewer, the tweets the viewer acted on and the acted-on authors' newest
tweets: the candidates whose order the action moves. Scores of everyone else's candidates move
only with tweet- and author-level counts; those are read fresh by the ranked read path on every
request, so pushing them to every follower on every engagement (a fanout of score messages per
engagement) would buy nothing the read does not already have.

Passive kinds (an impression, a dwell) are not the viewer's choice and outnumber the rest many
times over: they reach the scores on the next action or read, not as messages of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

PASSIVE_KINDS: Final = frozenset({"impression", "dwell"})


@dataclass(slots=True)
class ViewerChange:
    """What one viewer did in a batch: the authors and tweets acted on, and the latest event time."""

    ts: int
    authors: set[int] = field(default_factory=set)
    tweets: dict[int, int] = field(default_factory=dict)  # tweet id -> author id


def viewer_changes(events: Iterable[Mapping[str, Any]]) -> dict[int, ViewerChange]:
    """Per viewer, the non-passive engagements of a batch (normalised `engagement_events`)."""
    changes: dict[int, ViewerChange] = {}
    for event in events:
        if event["type"] in PASSIVE_KINDS:
            continue
        change = changes.setdefault(event["user_id"], ViewerChange(event["ts"]))
        change.ts = max(change.ts, event["ts"])
        change.authors.add(event["author_id"])
        change.tweets[event["tweet_id"]] = event["author_id"]
    return changes


def candidates_to_rescore(change: ViewerChange, newest_by_author: Mapping[int, Iterable[int]]) -> list[int]:
    """The tweets acted on, then each acted-on author's newest tweets; each once, in that order."""
    ordered = dict.fromkeys(change.tweets)
    for author in sorted(change.authors):
        ordered.update(dict.fromkeys(newest_by_author.get(author, ())))
    return list(ordered)


@dataclass(frozen=True, slots=True)
class UserScore:
    """One message of `user_scores` (schemas/user_scores.avsc), keyed by the user id."""

    user_id: int
    ts: int
    tweet_id: int
    author_id: int
    score: float
    probabilities: Mapping[str, float]
    bucket: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "ts": self.ts,
            "tweet_id": self.tweet_id,
            # JavaScript numbers lose Snowflake ids above 2**53; the HTTP API sends strings too.
            "tweet_id_str": str(self.tweet_id),
            "author_id": self.author_id,
            "score": self.score,
            "probabilities": dict(self.probabilities),
            "bucket": self.bucket,
        }
