import random

from streams.ranked.sources import newest_in_network


def test_pushed_and_pulled_within_the_budget_are_kept_whole() -> None:
    pushed, pulled = [9, 7, 5], {100: [8, 6], 200: [4]}
    assert newest_in_network(pushed, pulled, 6) == (pushed, pulled)


def test_over_the_budget_both_keep_their_part_of_the_newest() -> None:
    rng = random.Random(7)
    ids = rng.sample(range(1, 10**6), 900)
    pushed = sorted(ids[:600], reverse=True)
    pulled = {100: sorted(ids[600:800], reverse=True), 200: sorted(ids[800:], reverse=True)}
    kept_pushed, kept_pulled = newest_in_network(pushed, pulled, 500)
    newest = set(sorted(ids, reverse=True)[:500])
    assert set(kept_pushed) == newest & set(pushed)
    assert kept_pushed == [t for t in pushed if t in newest]  # order kept
    for author, tweets in pulled.items():
        assert kept_pulled[author] == [t for t in tweets if t in newest]


def test_a_tweet_both_sources_hold_counts_once() -> None:
    # 5 distinct tweets, 3 of them in both: a budget of 5 cuts nothing.
    pushed, pulled = [5, 4, 3, 2], {100: [5, 4, 3, 1]}
    assert newest_in_network(pushed, pulled, 5) == (pushed, pulled)
    assert newest_in_network(pushed, pulled, 3) == ([5, 4, 3], {100: [5, 4, 3]})
