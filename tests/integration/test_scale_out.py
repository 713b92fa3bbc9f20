"""Two workers share the partitions; every user's timeline, read through either worker, is exactly
the tweets of the user and of the accounts the user follows."""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict

import pytest

from streams.http.auth import mint_token
from tests.harness import Cluster
from tests.integration.test_timelines import activity, get_timeline, graph, tweet, tweet_ids

USERS = 40


@pytest.mark.slow
def test_two_workers_keep_every_timeline_exact(empty_broker: str, cluster: Cluster) -> None:
    workers = [cluster.start_worker("w1"), cluster.start_worker("w2")]
    rng = random.Random(3)
    follows = {(u, v) for u in range(1, USERS + 1) for v in rng.sample(range(1, USERS + 1), 6) if u != v}
    cluster.produce([activity(u) for u in range(1, USERS + 1)] + [graph("follow", u, v) for u, v in follows])
    time.sleep(3)
    for user in range(1, USERS + 1):
        status, _ = get_timeline(workers[user % 2], user, limit=200)
        assert status == 200

    posts = [tweet(rng.randint(1, USERS)) for _ in range(300)]
    cluster.produce(posts)
    expected: dict[int, list[int]] = defaultdict(list)
    for _, _, event in posts:
        author = event["author_id"]
        for user in range(1, USERS + 1):
            if user == author or (user, author) in follows:
                expected[user].append(event["tweet_id"])

    deadline = time.monotonic() + 60
    pending = set(range(1, USERS + 1))
    while pending and time.monotonic() < deadline:
        for user in sorted(pending):
            status, body = get_timeline(workers[user % 2], user, limit=200)
            if status == 200 and tweet_ids(body) == sorted(expected[user], reverse=True):
                assert all(item["source"] == "push" for item in body["items"])
                pending.discard(user)
        time.sleep(0.3)
    assert not pending, f"timelines not exact for users {sorted(pending)}"
    # State views: the owner answers, whichever worker is asked; only the user's own token.
    owners = set()
    for user in range(1, 9):
        auth = {"Authorization": f"Bearer {mint_token('test-secret', user)}"}
        answers = [json.loads(w.get(f"/state/users/{user}", auth)[1]) for w in workers]
        assert answers[0] == answers[1]
        assert answers[0]["following"] == sorted(v for u, v in follows if u == user)
        assert answers[0]["features"]["social.following"] == len(answers[0]["following"])
        owners.add(answers[0]["served_by"])
        assert workers[0].get(f"/state/users/{user}")[0] == 401
        assert workers[1].get(f"/state/users/{user + 1}", auth)[0] == 403
    assert owners == {w.url for w in workers}, "both workers own some users"
    for worker in workers:
        applied = worker.metric("homemixer_messages_total", topic="content_events", outcome="applied")
        assert 0 < applied < len(posts), f"{worker.name} should own some, not all, partitions"
