"""The tweet store of one partition (the seed design's PostgreSQL `tweets`), in RocksDB.

A partition owns the tweets of the authors whose id keys it. Each tweet is one key; each author's
newest tweets are indexed by zero-padded id, so a prefix scan lists them in creation order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import orjson

from streams.state.keys import TWEET_PREFIX, authored_key, authored_prefix, parse_authored_key, tweet_key
from streams.state.partition_store import PartitionStore


@dataclass
class Tweet:
    tweet_id: int
    author_id: int
    ts: int
    text: str | None = None
    reply_to: int | None = None
    quote_of: int | None = None
    retweet_of: int | None = None
    media_count: int | None = None


class TweetStore:
    def __init__(self, store: PartitionStore, keep_per_author: int) -> None:
        self._store = store
        self._keep = keep_per_author

    def put(self, tweet: Tweet) -> None:
        """Store a tweet and index it under its author, keeping the author's newest `keep`."""
        self._store.put(tweet_key(tweet.tweet_id), orjson.dumps(asdict(tweet)))
        self._store.put(authored_key(tweet.author_id, tweet.tweet_id), b"")
        indexed = [key for key, _ in self._store.scan_prefix(authored_prefix(tweet.author_id))]
        for key in indexed[: max(0, len(indexed) - self._keep)]:
            self._store.delete(key)

    def get(self, tweet_id: int) -> Tweet | None:
        raw = self._store.get(tweet_key(tweet_id))
        return None if raw is None else Tweet(**orjson.loads(raw))

    def delete(self, tweet_id: int) -> Tweet | None:
        tweet = self.get(tweet_id)
        if tweet is not None:
            self._store.delete(tweet_key(tweet_id))
            self._store.delete(authored_key(tweet.author_id, tweet_id))
        return tweet

    def recent(self, author: int, limit: int) -> list[int]:
        """The author's newest tweet ids, newest first."""
        ids = [parse_authored_key(key, author) for key, _ in self._store.scan_prefix(authored_prefix(author))]
        return ids[::-1][:limit]

    def all_tweets(self) -> Iterator[Tweet]:
        for _, raw in self._store.scan_prefix(TWEET_PREFIX):
            yield Tweet(**orjson.loads(raw))
