"""Every RocksDB key homemixer writes, and the functions that build and parse them.

Each node keeps its own stores (`<data dir>/<node>/<store>/`), so prefixes need only be distinct
within one node; they are listed together so that a reader of a store's keys finds them all here.
Keys are bytes; ids are decimal, except where a fixed width keeps RocksDB's byte order equal to
numeric order (the dedup hour buckets, the author index). Changing any of these is a state format
change: stores and changelogs written with the old keys would no longer be read.

| key | value | kept by |
| --- | --- | --- |
| `\\x00offset:<input topic>` | last applied offset of that input | every store (`PartitionStore`) |
| `\\x00changelog-offset` | changelog offset the store reflects | every store with a changelog |
| `\\x00source:<input topic>/<source partition>` | `<offset>:<index>` last applied | nodes after the parser |
| `\\x00dedup-watermark` | largest event time checked | parser |
| `dedup:<hour bucket, 8 bytes>:<event id>` | empty | parser |
| `agg:<entity type>:<entity id>` | decayed counts | aggregator |
| `windows:content_metrics` | the partition's open windows | window calculator |
| `velocity:<tweet>` | hopping 5-minute counter | window calculator |
| `activity:<user>` | sessions and context | feature extractor |
| `boost:<tweet>` | decayed signal boosts | signal booster |
| `vector:<entity type>:<entity id>` | each feature family's newest values | feature updater |
| `fw:<user>:<follower>`, `fo:<user>:<followee>` | empty (an edge) | fanout |
| `bk:<user>:<blocked>`, `mu:<user>:<muted>` | empty (an edge) | fanout |
| `fc:<user>`, `gc:<user>`, `mc:<user>` | follower, following, mutual counts | fanout |
| `tw:<tweet>` | the tweet, JSON | fanout (tweet store) |
| `au:<author>:<tweet id, 20 digits>` | empty (the author's index) | fanout (tweet store) |
"""

from __future__ import annotations

import struct
from enum import Enum
from typing import Final

# Bookkeeping sorts before every entity key: it starts with a NUL byte.
OFFSET_PREFIX: Final = b"\x00offset:"
CHANGELOG_OFFSET: Final = b"\x00changelog-offset"
SOURCE_PREFIX: Final = b"\x00source:"
DEDUP_WATERMARK: Final = b"\x00dedup-watermark"

DEDUP_PREFIX: Final = b"dedup:"
_DEDUP_BUCKET: Final = struct.Struct(">q")
# Shift so that negative buckets still sort before positive ones in RocksDB's byte order.
_DEDUP_SHIFT: Final = 2**62

CONTENT_WINDOWS: Final = b"windows:content_metrics"

TWEET_PREFIX: Final = b"tw:"
ID_DIGITS: Final = 20  # 2**64 has 20 decimal digits


def applied_offset_key(topic: str) -> bytes:
    return OFFSET_PREFIX + topic.encode()


def source_position_key(topic: str, source_partition: int) -> bytes:
    return SOURCE_PREFIX + f"{topic}/{source_partition}".encode()


def dedup_bucket_key(bucket: int) -> bytes:
    """The start of an hour bucket's event ids; a range delete between two of these expires them."""
    return DEDUP_PREFIX + _DEDUP_BUCKET.pack(bucket + _DEDUP_SHIFT)


def dedup_key(bucket: int, event_id: str) -> bytes:
    return dedup_bucket_key(bucket) + b":" + event_id.encode()


def counts_key(entity_type: str, entity_id: str) -> bytes:
    return f"agg:{entity_type}:{entity_id}".encode()


def velocity_key(tweet_id: int) -> bytes:
    return f"velocity:{tweet_id}".encode()


def activity_key(user_id: int) -> bytes:
    return f"activity:{user_id}".encode()


def boost_key(tweet_id: int) -> bytes:
    return f"boost:{tweet_id}".encode()


def vector_key(entity_key: str) -> bytes:
    """An entity's merged vector, by its `real_time_features` key (`<entity type>:<id>`)."""
    return f"vector:{entity_key}".encode()


class Graph(Enum):
    """The follow graph's key kinds: edges `<kind>:<user>:<other>`, counts `<kind>:<user>`."""

    FOLLOWERS = "fw"
    FOLLOWING = "fo"
    BLOCKS = "bk"
    MUTES = "mu"
    FOLLOWER_COUNT = "fc"
    FOLLOWING_COUNT = "gc"
    MUTUAL_COUNT = "mc"


def edge_key(kind: Graph, user: int, other: int) -> bytes:
    return f"{kind.value}:{user}:{other}".encode()


def edges_prefix(kind: Graph, user: int | None = None) -> bytes:
    """The prefix of every `kind` edge, or of one user's."""
    return f"{kind.value}:".encode() if user is None else f"{kind.value}:{user}:".encode()


def parse_edge(key: bytes) -> tuple[int, int]:
    """(user, other) of an edge key."""
    _, user, other = key.split(b":")
    return int(user), int(other)


def count_key(kind: Graph, user: int) -> bytes:
    return f"{kind.value}:{user}".encode()


def parse_count_key(key: bytes) -> int:
    """The user of a count key."""
    return int(key.split(b":", 1)[1])


def tweet_key(tweet_id: int) -> bytes:
    return TWEET_PREFIX + str(tweet_id).encode()


def authored_prefix(author: int) -> bytes:
    return f"au:{author}:".encode()


def authored_key(author: int, tweet_id: int) -> bytes:
    return authored_prefix(author) + str(tweet_id).zfill(ID_DIGITS).encode()


def parse_authored_key(key: bytes, author: int) -> int:
    """The tweet id of an author's index key."""
    return int(key[len(authored_prefix(author)) :])
