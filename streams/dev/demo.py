"""A synthetic workload for `homemixer up --demo`: a power-law follower graph with a few
celebrities, then tweets, engagements, activity and signals at a steady rate.

`Workload` is pure (seeded, no I/O, the clock passed in); `run_demo` sends it to Kafka.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from streams.snowflake import SnowflakeGenerator

if TYPE_CHECKING:
    from confluent_kafka import Producer

Message = tuple[str, str, dict[str, Any]]
"""(topic, key, event)"""

ENGAGEMENTS = ("impression", "like", "retweet", "reply", "click", "bookmark", "dwell")
ENGAGEMENT_WEIGHTS = (60, 15, 4, 3, 10, 2, 6)
ACTIVITY = ("page_view", "click", "scroll", "hover", "session_start", "session_end")
SIGNALS = ("trending_topic", "breaking_news", "sports")
TOPICS = ("worldcup", "elections", "launch", "storm", "markets")
# Recent tweets are what people engage with; older ones fall out of this window.
RECENT_TWEETS = 2000


@dataclass
class Workload:
    users: int = 1000
    celebrities: int = 3
    seed: int = 7
    rng: random.Random = field(init=False)
    _ids: SnowflakeGenerator = field(init=False)
    _recent: list[tuple[int, int]] = field(init=False, default_factory=list)
    _seq: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._ids = SnowflakeGenerator(worker=1)

    def _event(self, ts: int, **fields: Any) -> dict[str, Any]:
        self._seq += 1
        return {"event_id": f"demo-{self.seed}-{self._seq}", "ts": ts, **fields}

    def follow_graph(self, now_ms: int) -> Iterator[Message]:
        """Each user follows a few accounts, picked with probability ~ 1/rank (Zipf), and every
        celebrity (users 1..celebrities) is followed by most users."""
        for user in range(1, self.users + 1):
            followees = {c for c in range(1, self.celebrities + 1) if self.rng.random() < 0.8}
            for _ in range(self.rng.randint(3, 20)):
                followees.add(min(self.users, int(self.rng.paretovariate(1.0))))
            followees.discard(user)
            for dst in sorted(followees):
                yield (
                    "social_graph_events",
                    str(user),
                    self._event(now_ms, type="follow", src_user_id=user, dst_user_id=dst),
                )

    def next_message(self, now_ms: int) -> Message:
        roll = self.rng.random()
        user = self.rng.randint(1, self.users)
        if roll < 0.08 or not self._recent:
            tweet_id = self._ids.next_id(now_ms)
            self._recent.append((tweet_id, user))
            del self._recent[:-RECENT_TWEETS]
            text = f"demo tweet {tweet_id} about #{self.rng.choice(TOPICS)}"
            return (
                "content_events",
                str(user),
                self._event(now_ms, type="tweet_create", tweet_id=tweet_id, author_id=user, text=text),
            )
        if roll < 0.70:
            tweet_id, author = self.rng.choice(self._recent)
            kind = self.rng.choices(ENGAGEMENTS, ENGAGEMENT_WEIGHTS)[0]
            extra = {"dwell_ms": self.rng.randint(100, 20_000)} if kind == "dwell" else {}
            return (
                "engagement_events",
                str(user),
                self._event(now_ms, type=kind, user_id=user, tweet_id=tweet_id, author_id=author, **extra),
            )
        if roll < 0.98:
            return (
                "user_activity_events",
                str(user),
                self._event(now_ms, type=self.rng.choice(ACTIVITY), user_id=user, surface="home"),
            )
        topic = self.rng.choice(TOPICS)
        tweets = [t for t, _ in self.rng.sample(self._recent, min(3, len(self._recent)))]
        return (
            "real_time_signals",
            topic,
            self._event(
                now_ms,
                type=self.rng.choice(SIGNALS),
                topic=topic,
                weight=self.rng.random(),
                tweet_ids=tweets,
            ),
        )


def produce(producer: Producer, message: Message) -> None:
    """Queue one event; when the producer's queue is full, wait for deliveries and retry."""
    topic, key, event = message
    while True:
        try:
            producer.produce(topic, key=key.encode(), value=orjson.dumps(event))
            return
        except BufferError:
            producer.poll(0.05)


def run_demo(bootstrap: str, rate: float, users: int, duration_s: float | None = None) -> None:
    """Send the workload at `rate` events/s until interrupted (or for `duration_s`)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    workload = Workload(users=users)
    sent = 0

    def send(message: Message) -> None:
        nonlocal sent
        produce(producer, message)
        sent += 1

    start = time.monotonic()
    for message in workload.follow_graph(int(time.time() * 1000)):
        send(message)
    producer.flush()
    print(f"demo: follow graph of {users} users sent ({sent} follows)", file=sys.stderr)
    last_report = time.monotonic()
    next_at = time.monotonic()
    while duration_s is None or time.monotonic() - start < duration_s:
        send(workload.next_message(int(time.time() * 1000)))
        producer.poll(0)
        next_at += 1.0 / rate
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if time.monotonic() - last_report >= 5:
            elapsed = time.monotonic() - start
            print(f"demo: {sent} events sent, {sent / elapsed:.0f}/s", file=sys.stderr, flush=True)
            last_report = time.monotonic()
    producer.flush()
