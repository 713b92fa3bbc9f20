"""Node `score_calculator`: a viewer's engagements -> their changed candidates re-scored -> `user_scores`.

Consumes: the parser's `engagements-by-user` route, the same partitions the aggregator's by-user
agent reads (Faust hands every record to both agents). A batch is scored once the aggregator has
applied it, so the viewer's habits and affinity in Redis already include it. Emits: per viewer who
acted (not impressions or dwell: `streams.mixer.score_updates`), one `user_scores` message for
each tweet acted on and each of the acted-on authors' newest tweets, scored as of the batch's
latest event time with the same hydrator, model and weights as a ranked read in the viewer's A/B
bucket (its best strategy so far, without exploring). Keeps: only the input offsets it applied,
so a restarted worker does not score a batch twice; a batch cut off by a crash before its commit
is scored again, and its messages repeat values already sent (`user_scores` is an upsert stream
by user and tweet).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from faust.types import TP
from redis.asyncio import Redis

from streams.app import redis_client, settings
from streams.mixer.adaptation import Adaptation
from streams.mixer.components import Candidate, Query, ScoreResult, SourceItem, ViewerContext
from streams.mixer.engagement_model import ScoringModel
from streams.mixer.score_updates import UserScore, ViewerChange, candidates_to_rescore, viewer_changes
from streams.mixer.scorers import EngagementScorer
from streams.ranked.bandit_store import load_adaptation
from streams.ranked.hydrator import RedisHydrator, hydrate_replies
from streams.ranked.served_outcomes import load_calibration
from streams.runtime.batch import Batch, fresh_events
from streams.runtime.sink import SinkBatch
from streams.serving.view import ServingReads, UserContext
from streams.state.node_state import node_state_named
from topologies.topics import ROUTES, node_agent, node_state, sink_topics

NODE = "score_calculator"
# The node whose writes a batch's scores read: the aggregator, on the same input partitions.
AGGREGATOR = "aggregator"
# Newest tweets per acted-on author that are re-scored: a page's worth of one author's tweets.
RESCORED_PER_AUTHOR = 20
# Viewers whose contexts and hydrations share one round trip: a big batch's viewers in a few
# round trips, none of which holds Redis for long.
VIEWERS_PER_ROUND_TRIP = 256
# How long a batch waits for the aggregator to apply it before it is scored on what Redis has.
AGGREGATOR_WAIT_S = 10.0

log = logging.getLogger(__name__)
(user_route, _) = next(route for route in ROUTES["engagement_events"] if route[1] == "user_id")
state = node_state(NODE, [user_route.get_topic_name()])
scores_topic = sink_topics["user_scores"]


async def score_changes(batch: Batch, outputs: SinkBatch) -> None:
    changes = viewer_changes(e for part in batch.partitions.values() for e in part.events)
    if changes:
        await applied_by_aggregator(batch.last_offsets)
        for score in await rescore(redis_client(), changes):
            outputs.add(scores_topic, str(score.user_id), score.to_json())


async def applied_by_aggregator(last_offsets: dict[TP, int]) -> None:
    aggregator = node_state_named(AGGREGATOR)
    deadline = time.monotonic() + AGGREGATOR_WAIT_S
    for tp, offset in last_offsets.items():
        while not aggregator.has_applied(tp, offset):
            if time.monotonic() > deadline:
                log.warning("%s: scoring %s before the aggregator applied it", NODE, tp)
                return
            await asyncio.sleep(0.005)


async def rescore(redis: Redis, changes: dict[int, ViewerChange]) -> list[UserScore]:
    reads = ServingReads(redis)
    adaptation, calibration = await asyncio.gather(load_adaptation(redis), load_calibration(redis))
    scorer = EngagementScorer(ScoringModel(calibration=calibration))
    users = list(changes)
    scores: list[UserScore] = []
    for start in range(0, len(users), VIEWERS_PER_ROUND_TRIP):
        chunk = users[start : start + VIEWERS_PER_ROUND_TRIP]
        newest, following = await asyncio.gather(
            reads.authored(sorted({a for u in chunk for a in changes[u].authors}), RESCORED_PER_AUTHOR, None),
            reads.following_many(chunk),
        )
        plans = [plan_viewer(redis, adaptation, u, changes[u], following[u], newest) for u in chunk]
        plans = [p for p in plans if p.items]
        replies = await hydrate_replies(redis, [p.hydrator.script_call(p.query, p.items) for p in plans])
        candidates = [plan.candidates(reply) for plan, reply in zip(plans, replies, strict=True)]
        results = scorer.score_many([(plan.query, c) for plan, c in zip(plans, candidates, strict=True)])
        for plan, plan_candidates, plan_results in zip(plans, candidates, results, strict=True):
            scores.extend(plan.user_scores(plan_candidates, plan_results))
    return scores


@dataclass(frozen=True)
class ViewerPlan:
    """One viewer's re-scoring: the query a ranked read in their bucket would make, and the
    candidates; its hydration shares a round trip with the batch's other viewers."""

    query: Query
    viewer: ViewerContext
    hydrator: RedisHydrator
    items: list[SourceItem]
    ts: int

    def candidates(self, reply: list[Any]) -> list[Candidate]:
        features = self.hydrator.decode(reply, self.query, self.viewer, self.items)
        # The source only labels a page item; the scorer reads the features.
        return [Candidate(f.tweet_id, f.author_id, "push", f) for f in features if not f.deleted]

    def user_scores(self, candidates: list[Candidate], results: list[ScoreResult]) -> list[UserScore]:
        user, bucket = self.query.user_id, self.query.bucket
        return [
            UserScore(user, self.ts, c.tweet_id, c.author_id, r.score, r.predictions, bucket)
            for c, r in zip(candidates, results, strict=True)
        ]


def plan_viewer(
    redis: Redis,
    adaptation: Adaptation,
    user: int,
    change: ViewerChange,
    following: set[int],
    newest: dict[int, list[int]],
) -> ViewerPlan:
    bucket = adaptation.bucket_of(user)
    strategy = adaptation.best(bucket)
    tweet_ids = candidates_to_rescore(change, newest)
    query = Query(user, len(tweet_ids), None, change.ts, bucket, strategy, adaptation.strategies[strategy])
    # Scores read only whom the viewer follows (in-network); the rest of a context (blocks, mutes,
    # not interested) filters a page, and re-scoring filters nothing.
    context = UserContext(following, set(), set(), None, set())
    hydrator = RedisHydrator(
        redis, context, feedback=bucket in adaptation.learning, frozen=settings.freeze_learning
    )
    viewer = ViewerContext(following=frozenset(following))
    return ViewerPlan(query, viewer, hydrator, [SourceItem(t) for t in tweet_ids], change.ts)


node_agent(user_route, f"{NODE}.engagements-by-user", state, fresh_events, score_changes)
