"""`hydrate.lua` on a Redis Cluster, where one script cannot read keys of many hash slots: the same
call (KEYS and ARGV as the script takes them) and the same reply, in two round trips of cluster
pipelines that reach the masters side by side. First every candidate's author and retweet_of,
the viewer's and the tweets' features, the tweets' signals and the served set; then, once the
authors are known, the authors' and the viewer x authors' features and the viewer's feedback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis


async def hydrate_in_round_trips(redis: Redis, keys: Sequence[str], args: Sequence[str]) -> list[Any]:
    """What `hydrate.lua` answers for `keys` and `args` (its header says what they are)."""
    tweet_prefix, tweet_features, signal_prefix, author_features, pair_features, viewer_field, listed = args
    ids = listed.split()
    pipe = redis.pipeline(transaction=False)
    for tweet_id in ids:
        pipe.hmget(f"{tweet_prefix}{tweet_id}", ["author_id", "retweet_of"])
    pipe.get(keys[0])
    for tweet_id in ids:
        pipe.get(f"{tweet_features}{tweet_id}")
    for tweet_id in ids:
        pipe.get(f"{signal_prefix}{tweet_id}")
    pipe.zmscore(keys[1], ids)
    replies = await pipe.execute()
    n = len(ids)
    rows, (viewer,), tweets, signal_values, (served_scores,) = (
        replies[:n],
        replies[n : n + 1],
        replies[n + 1 : 2 * n + 1],
        replies[2 * n + 1 : 3 * n + 1],
        replies[3 * n + 1 :],
    )
    author_of: list[Any] = []
    retweets: list[Any] = []
    authors: list[Any] = []
    for i, (author, retweet_of) in enumerate(rows):
        author_of.append(author)
        if retweet_of is not None:
            retweets += [i, retweet_of]
        if author is not None and author not in authors:
            authors.append(author)
    pipe = redis.pipeline(transaction=False)
    for author in authors:
        pipe.get(f"{author_features}{author.decode()}")
    for author in authors:
        pipe.get(f"{pair_features}{author.decode()}")
    if len(keys) > 2:
        pipe.hmget(keys[2], [viewer_field, *authors])
    later = await pipe.execute() if len(pipe) else []
    per_author = later[: 2 * len(authors)]
    feedback = later[2 * len(authors)] if len(keys) > 2 else []
    signals = [v for i, value in enumerate(signal_values) if value is not None for v in (i, value)]
    served = [i for i, score in enumerate(served_scores or []) if score is not None]
    return [authors, author_of, retweets, [viewer, *per_author, *tweets], signals, served, feedback]
