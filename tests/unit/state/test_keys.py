"""The RocksDB key layout is a stored format: these are the bytes earlier versions wrote."""

from streams.state import keys
from streams.state.keys import Graph


def test_keys_are_the_bytes_stores_already_hold() -> None:
    assert keys.applied_offset_key("engagement_events") == b"\x00offset:engagement_events"
    assert keys.source_position_key("hm-engagements-by-tweet", 3) == b"\x00source:hm-engagements-by-tweet/3"
    assert keys.dedup_key(1, "e1") == b"dedup:" + (1 + 2**62).to_bytes(8, "big") + b":e1"
    assert keys.counts_key("user_author", "1:2") == b"agg:user_author:1:2"
    assert keys.velocity_key(7) == b"velocity:7"
    assert keys.activity_key(7) == b"activity:7"
    assert keys.boost_key(7) == b"boost:7"
    assert keys.edge_key(Graph.FOLLOWERS, 1, 2) == b"fw:1:2"
    assert keys.count_key(Graph.MUTUAL_COUNT, 1) == b"mc:1"
    assert keys.tweet_key(9) == b"tw:9"
    assert keys.authored_key(1, 9) == b"au:1:00000000000000000009"


def test_each_parser_inverts_its_builder() -> None:
    assert keys.parse_edge(keys.edge_key(Graph.BLOCKS, 12, 345)) == (12, 345)
    assert keys.parse_count_key(keys.count_key(Graph.FOLLOWER_COUNT, 12)) == 12
    assert keys.parse_authored_key(keys.authored_key(12, 2**63), 12) == 2**63
    assert keys.edge_key(Graph.FOLLOWING, 1, 2).startswith(keys.edges_prefix(Graph.FOLLOWING, 1))
    assert not keys.edge_key(Graph.FOLLOWING, 11, 2).startswith(keys.edges_prefix(Graph.FOLLOWING, 1))


def test_dedup_buckets_sort_in_time_order_across_zero() -> None:
    buckets = [-5, -1, 0, 1, 2**40]
    assert sorted(buckets, key=keys.dedup_bucket_key) == buckets
    assert [keys.dedup_bucket_key(b) for b in buckets] == sorted(keys.dedup_bucket_key(b) for b in buckets)
