"""The tweet store of one partition (the seed design's PostgreSQL `tweets`), in RocksDB.

A partition owns the tweets of the authors whose id keys it. Each tweet is one key; each author's
newest tweets are indexed by zero-padded id, so a prefix scan lists them in creation order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import orjson

from streams.state.partition_store import PartitionStore

TWEET = "tw"  # tw:<tweet_id> -> Tweet
AUTHORED = "au"  # au:<author>:<tweet id, 20 digits> -> b""
ID_DIGITS = 20  # 2**64 has 20 decimal digits


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


def _tweet_key(tweet_id: int) -> bytes:
    return f"{TWEET}:{tweet_id}".encode()


def _authored_prefix(author: int) -> bytes:
    return f"{AUTHORED}:{author}:".encode()


class TweetStore:
    def __init__(self, store: PartitionStore, keep_per_author: int) -> None:
        self._store = store
        self._keep = keep_per_author

    def put(self, tweet: Tweet) -> None:
        """Store a tweet and index it under its author, keeping the author's newest `keep`."""
        self._store.put(_tweet_key(tweet.tweet_id), orjson.dumps(asdict(tweet)))
        prefix = _authored_prefix(tweet.author_id)
        self._store.put(prefix + str(tweet.tweet_id).zfill(ID_DIGITS).encode(), b"")
        indexed = [key for key, _ in self._store.scan_prefix(prefix)]
        for key in indexed[: max(0, len(indexed) - self._keep)]:
            self._store.delete(key)

    def get(self, tweet_id: int) -> Tweet | None:
        raw = self._store.get(_tweet_key(tweet_id))
        return None if raw is None else Tweet(**orjson.loads(raw))

    def delete(self, tweet_id: int) -> Tweet | None:
        tweet = self.get(tweet_id)
        if tweet is not None:
            self._store.delete(_tweet_key(tweet_id))
            self._store.delete(_authored_prefix(tweet.author_id) + str(tweet_id).zfill(ID_DIGITS).encode())
        return tweet

    def recent(self, author: int, limit: int) -> list[int]:
        """The author's newest tweet ids, newest first."""
        prefix = _authored_prefix(author)
        ids = [int(key[len(prefix) :]) for key, _ in self._store.scan_prefix(prefix)]
        return ids[::-1][:limit]

    def all_tweets(self) -> Iterator[Tweet]:
        for _, raw in self._store.scan_prefix(f"{TWEET}:".encode()):
            yield Tweet(**orjson.loads(raw))
