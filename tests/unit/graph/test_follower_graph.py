import random
from pathlib import Path

from streams.graph.follower_graph import Crossing, FollowerGraph, Relation, celebrity_crossing
from streams.graph.tweet_store import Tweet, TweetStore
from streams.state.keys import Graph
from streams.state.partition_store import PartitionStore


def test_graph_matches_a_reference_set_through_random_follows_and_replays(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p")
    graph = FollowerGraph(store)
    rng = random.Random(5)
    reference: set[tuple[int, int]] = set()
    for i in range(3000):
        user, follower = rng.randint(1, 12), rng.randint(1, 300)
        follow = rng.random() < 0.7
        changed = graph.set_follower(user, follower, follow)
        assert changed == (((user, follower) in reference) != follow)
        (reference.add if follow else reference.discard)((user, follower))
        if i % 500 == 0:
            store.commit({})
    for user in range(1, 13):
        expected = sorted(f for u, f in reference if u == user)
        assert sorted(graph.followers(user)) == expected
        assert graph.follower_count(user) == len(expected)
    assert graph.follower_count(99) == 0 and list(graph.followers(1_000)) == []


def test_relations_and_following_are_kept_apart(tmp_path: Path) -> None:
    graph = FollowerGraph(PartitionStore(tmp_path / "p"))
    graph.set_following(1, 2, True)
    graph.set_relation(Relation.BLOCK, 1, 3, True)
    graph.set_relation(Relation.MUTE, 1, 4, True)
    assert list(graph.following(1)) == [2] and graph.following_count(1) == 1
    assert list(graph.related(Relation.BLOCK, 1)) == [3]
    assert list(graph.related(Relation.MUTE, 1)) == [4]
    assert graph.set_relation(Relation.MUTE, 1, 4, False) and not list(graph.related(Relation.MUTE, 1))
    assert sorted(graph.users_with(Graph.FOLLOWING)) == [(1, 2)]


def test_celebrity_crossing_either_way() -> None:
    assert celebrity_crossing(9, 10, 10) is Crossing.UP
    assert celebrity_crossing(10, 9, 10) is Crossing.DOWN
    assert celebrity_crossing(10, 11, 10) is None and celebrity_crossing(3, 4, 10) is None


def test_tweet_store_keeps_the_newest_per_author(tmp_path: Path) -> None:
    tweets = TweetStore(PartitionStore(tmp_path / "p"), keep_per_author=3)
    for i in [5, 1, 9, 7, 3]:
        tweets.put(Tweet(tweet_id=10**18 + i, author_id=8, ts=i, text=f"t{i}"))
    tweets.put(Tweet(tweet_id=42, author_id=9, ts=1))
    assert tweets.recent(8, 10) == [10**18 + 9, 10**18 + 7, 10**18 + 5]
    assert tweets.get(10**18 + 9) == Tweet(10**18 + 9, 8, 9, "t9")
    assert tweets.delete(10**18 + 9) is not None and tweets.get(10**18 + 9) is None
    assert tweets.recent(8, 10) == [10**18 + 7, 10**18 + 5]
    assert tweets.recent(9, 10) == [42]


def test_mutual_count_follows_both_directions_in_any_order(tmp_path: Path) -> None:
    graph = FollowerGraph(PartitionStore(tmp_path / "p"))
    rng = random.Random(9)
    follows: set[tuple[int, int]] = set()  # (follower, followee)
    user = 1
    for _ in range(2000):
        other = rng.randint(2, 40)
        present = rng.random() < 0.6
        if rng.random() < 0.5:
            graph.set_following(user, other, present)
            (follows.add if present else follows.discard)((user, other))
        else:
            graph.set_follower(user, other, present)
            (follows.add if present else follows.discard)((other, user))
        expected = sum(1 for a, b in follows if a == user and (b, user) in follows)
        assert graph.mutual_count(user) == expected
    assert graph.social_features(user)["social.mutual"] == float(graph.mutual_count(user))
