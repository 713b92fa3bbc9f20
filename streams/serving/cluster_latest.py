"""A latest read's Redis work on a Redis Cluster, where `latest_page.lua` cannot run: its keys
(the user's, the activity index, the celebrity set, the partitions' ready keys, the celebrities'
tweets and every candidate's body) live in many hash slots. The same answer as the script's, in
three round trips, each a cluster pipeline that reaches the masters side by side: the user's
context and readiness (`ServingReads.open_read`), the newest candidates of every source, then
the bodies and like counts of the newest `want` of them all.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import TYPE_CHECKING

from streams.serving.keys import READ_SLACK, authored_key, likes_key, timeline_key, tweet_key
from streams.serving.latest import LatestCandidates, LatestPage, Rebuild

if TYPE_CHECKING:
    from streams.serving.view import ServingReads


async def latest_page_in_round_trips(
    reads: ServingReads,
    user: int,
    now_ms: int,
    active_since_ms: int,
    partitions: int,
    limit: int,
    want: int,
    max_id: int | None,
) -> LatestPage | Rebuild | None:
    """`ServingReads.latest_page` on a cluster: None while the view is not ready, Rebuild when the
    timeline is missing or the user was inactive, else the page merged from the newest `want`
    candidates."""
    opened = await reads.open_read(user, now_ms, partitions)
    if not opened.ready:
        return None
    context = opened.context
    last_active = context.last_active_ms
    if not opened.materialised or last_active is None or last_active < active_since_ms:
        return Rebuild(context.following, context.celebrities)
    celebrities = sorted(context.celebrities)
    sources = [timeline_key(user), *(authored_key(c) for c in celebrities)]
    lists = await _newest(reads, sources, want, max_id)
    chosen = set(heapq.nlargest(want, (t for ids in lists for t in ids)))
    kept = [[t for t in ids if t in chosen] for ids in lists]
    # A source read to `want` may hold more than it gave; one cut short by the merge does.
    more = any(len(ids) == want or len(part) < len(ids) for ids, part in zip(lists, kept, strict=True))
    tweets, likes = await _bodies(reads, sorted(chosen, reverse=True))
    candidates = LatestCandidates(
        kept[0], dict(zip(celebrities, kept[1:], strict=True)), context.hidden, tweets, likes, more
    )
    return candidates.page(limit, max_id)


async def _newest(reads: ServingReads, keys: Sequence[str], want: int, max_id: int | None) -> list[list[int]]:
    """Each sorted set's newest `want` ids below max_id, the timeline sentinel left out. A read is
    inclusive of max_id's score, which neighbours past 2**53 share (keys.READ_SLACK), so a set
    whose rows were all at or above max_id is read on, as `latest_page.lua` does."""
    top = "+inf" if max_id is None else max_id
    rows_per_read = want + READ_SLACK
    found: list[list[int]] = [[] for _ in keys]
    offsets = [0] * len(keys)
    reading = list(range(len(keys)))
    while reading:
        pipe = reads.redis.pipeline(transaction=False)
        for k in reading:
            pipe.zrevrangebyscore(keys[k], top, "-inf", start=offsets[k], num=rows_per_read)
        still = []
        for k, rows in zip(reading, await pipe.execute(), strict=True):
            found[k] += [t for t in map(int, rows) if t > 0 and (max_id is None or t < max_id)]
            offsets[k] += len(rows)
            if len(found[k]) < want and len(rows) == rows_per_read:
                still.append(k)
        reading = still
    return [sorted(ids, reverse=True)[:want] for ids in found]


async def _bodies(
    reads: ServingReads, ids: Sequence[int]
) -> tuple[dict[int, tuple[int, str]], dict[int, int]]:
    """Each tweet's (author, text) where the tweet store has it, and its like count if liked."""
    pipe = reads.redis.pipeline(transaction=False)
    for tweet_id in ids:
        pipe.hmget(tweet_key(tweet_id), ["author_id", "text"])
        pipe.get(likes_key(tweet_id))
    replies = await pipe.execute()
    tweets, likes = {}, {}
    for tweet_id, (author, text), liked in zip(ids, replies[::2], replies[1::2], strict=True):
        if author is not None:
            tweets[tweet_id] = (int(author), "" if text is None else text.decode())
        if liked is not None:
            likes[tweet_id] = int(liked)
    return tweets, likes
