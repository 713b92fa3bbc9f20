"""The script loader against a real Redis: Redis names every script by the sha it is called by,
and a call, a pipeline and a transaction each run their scripts exactly once after Redis has lost
them (a restart or a SCRIPT FLUSH)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from streams.mixer.adaptation import ADAPTIVE
from streams.mixer.components import PageItem, Query
from streams.mixer.features import KINDS
from streams.mixer.viewer_feedback import Evidence
from streams.ranked.bandit_store import DISCOUNT, load_adaptation
from streams.ranked.feedback_store import LEARN, queue_learning
from streams.ranked.hydrator import HYDRATE
from streams.ranked.served_outcomes import MARK, RECORD, TAKE_MATURED
from streams.ranked.served_recorder import SERVE, RedisServedRecorder
from streams.serving.keys import CALIBRATION_PENDING, calibration_served_key, feedback_key, tweet_key
from streams.serving.scripts import execute
from streams.serving.view import HGET_MANY, HGETALL_MANY, LATEST_PAGE
from streams.timelines.cache import FANOUT, MERGE, REMOVE
from tests.harness import with_redis

SCRIPTS = (
    DISCOUNT,
    LEARN,
    HYDRATE,
    MARK,
    RECORD,
    TAKE_MATURED,
    SERVE,
    HGETALL_MANY,
    HGET_MANY,
    LATEST_PAGE,
    FANOUT,
    MERGE,
    REMOVE,
)
USER = 2  # adaptive bucket


def test_redis_names_every_script_by_its_sha(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        for script in SCRIPTS:
            assert await redis.script_load(script.text) == script.sha, script

    with_redis(redis_url, body)


def test_a_call_loads_its_script_when_redis_has_lost_it(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        await redis.hset(tweet_key(9), "text", "hi")
        await redis.script_flush()
        # One key: a call within one hash slot, as a script may make on a Redis Cluster too.
        assert await HGETALL_MANY(redis, [tweet_key(9)]) == [[b"text", b"hi"]]
        assert await HGETALL_MANY(redis, [tweet_key(10)]) == [[]]

    with_redis(redis_url, body)


def test_a_pipeline_runs_again_only_the_calls_redis_did_not_know(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        await redis.script_flush()
        await SERVE.load(redis)  # the served set's script is known, the calibration record's not
        raws = dict.fromkeys(KINDS, 0.1)
        items = [PageItem(t, 7, "push", True, 1.0, "", raws, raws) for t in (11, 12)]
        recorder = RedisServedRecorder(redis, label_window_ms=600_000)
        await recorder.record_served(Query(USER, 2, None, 1_000, ADAPTIVE, "cautious"), items)
        assert (await load_adaptation(redis)).state[ADAPTIVE].arms["cautious"].served == 2  # once
        assert await redis.hkeys(calibration_served_key(USER)) == [b"11", b"12"]
        assert await redis.zcard(CALIBRATION_PENDING) == 2

    with_redis(redis_url, body)


def test_a_transaction_loads_its_scripts_before_its_multi(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        await redis.script_flush()
        pipe = redis.pipeline(transaction=True)
        # In the feedback hash's slot: a transaction on a Redis Cluster stays in one slot.
        pipe.set(f"scripts-test:{{{USER}}}", 1)
        queue_learning(pipe, USER, 0, {7: Evidence(1.0, 0.5)})
        assert await execute(pipe) == [True, None]
        assert await redis.hget(feedback_key(USER), "7") == b"1 0.5 0"

    with_redis(redis_url, body)


def test_an_error_other_than_noscript_is_raised_once_the_pipeline_has_run(redis_url: str) -> None:
    async def body(redis: Redis) -> None:
        await redis.script_flush()
        pipe = redis.pipeline(transaction=False)
        pipe.set("scripts-test", "x")
        pipe.incr("scripts-test")
        HGETALL_MANY.queue(pipe, [tweet_key(9)])
        with pytest.raises(ResponseError, match="not an integer"):
            await execute(pipe)

    with_redis(redis_url, body)
