"""The timeline web view: `GET /timelines/{user_id}` and its new-items stream `.../events`,
`POST /tweets`, the page's buttons (`POST /engagements`, `POST /relationships`), the page at `GET /`.

Any worker answers any user: the read path needs only Redis, which the nodes keep current.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from importlib import resources
from typing import Any, cast

import orjson
from aiohttp import web
from faust.web import Request, Response, View

from streams.app import app, redis_client, settings, shared_redis
from streams.http.auth import mint_token
from streams.http.rules import (
    MAX_LIMIT,
    Action,
    HttpError,
    RateLimiter,
    authorize,
    check_events_request,
    check_timeline_request,
    engagement_event,
    error_body,
    page_security_headers,
    parse_dev_login,
    parse_engagement,
    parse_new_tweet,
    parse_relationship,
    relationship_event,
    too_many_requests,
)
from streams.ingest.codec import encode_json
from streams.ranked.reader import RankedReader
from streams.serving.connection import REDIS_UNAVAILABLE
from streams.serving.view import ServingReads
from streams.snowflake import SnowflakeGenerator
from streams.timelines.cache import TimelineCache
from streams.timelines.reader import NotReady, TimelineReader
from topologies.topics import source_topics

read_limiter = RateLimiter(settings.read_rate)
post_limiter = RateLimiter(settings.post_rate)
action_limiter = RateLimiter(settings.action_rate)
tweet_ids = SnowflakeGenerator(settings.snowflake_worker)
PAGE = (resources.files("streams.http") / "static" / "index.html").read_text("utf-8")
PAGE_HEADERS = page_security_headers(PAGE)
RETRY_NOT_READY_S = 2


def unavailable(problem: str) -> HttpError:
    """The 503 of a read that Redis cannot answer yet: restoring, or unreachable."""
    return HttpError(503, problem, (("Retry-After", str(RETRY_NOT_READY_S)),))


TIMELINE_ROUTE = "/timelines/{user_id}"
# A stream ends after this long and the page opens another: a worker's streams spread again over
# the workers after a restart, and no connection outlives a proxy's idle limit unnoticed.
EVENTS_STREAM_S = 300
# A comment line this often keeps proxies from closing an idle stream and shows the page it is alive.
EVENTS_HEARTBEAT_S = 15
# Set when the web server shuts down: aiohttp waits for open handlers, so the streams end at once.
closing = asyncio.Event()


def reader() -> TimelineReader:
    redis = redis_client()
    return TimelineReader(
        ServingReads(redis, shared_redis()),
        TimelineCache(redis, settings.timeline_max),
        settings.partitions,
        settings.active_days,
        settings.timeline_max,
    )


def ranked_reader() -> RankedReader:
    redis = redis_client()
    return RankedReader(
        redis,
        reader(),
        TimelineCache(redis, settings.timeline_max),
        settings.freeze_learning,
        settings.calibration_label_s * 1000,
    )


def refuse(view: View, err: HttpError) -> Response:
    return view.json(error_body(err), status=err.status, headers=dict(err.headers))


@app.page(TIMELINE_ROUTE)
class Timelines(View):
    async def get(self, request: Request, user_id: str) -> Response:
        query = check_timeline_request(
            request.headers.get("Authorization"), user_id, request.query, settings.secrets, time.time()
        )
        if isinstance(query, HttpError):
            return refuse(self, query)
        wait = read_limiter.allow(query.user_id, time.monotonic())
        if wait is not None:
            return refuse(self, too_many_requests(wait, "timeline reads"))
        now_ms = int(time.time() * 1000)
        try:
            if query.mode == "ranked":
                body = await ranked_reader().ranked(
                    query.user_id, query.limit, query.max_id, now_ms, query.record
                )
            else:
                body = (await reader().latest(query.user_id, query.limit, query.max_id, now_ms)).to_json()
        except NotReady as exc:
            return refuse(self, unavailable(str(exc)))
        except REDIS_UNAVAILABLE as exc:
            return refuse(self, unavailable(f"Redis is unreachable ({type(exc).__name__}); retry shortly"))
        return self.json(body)


@app.page("/tweets")
class Tweets(View):
    async def post(self, request: Request) -> Response:
        user = authorize(request.headers.get("Authorization"), None, settings.secrets, time.time())
        if isinstance(user, HttpError):
            return refuse(self, user)
        wait = post_limiter.allow(user, time.monotonic())
        if wait is not None:
            return refuse(self, too_many_requests(wait, "posts"))
        new = parse_new_tweet(await request.read())
        if isinstance(new, HttpError):
            return refuse(self, new)
        now_ms = int(time.time() * 1000)
        tweet_id = tweet_ids.next_id(now_ms)
        event: dict[str, Any] = {
            "event_id": f"post-{tweet_id}",
            "ts": now_ms,
            "type": "tweet_create",
            "tweet_id": tweet_id,
            "author_id": user,
            "text": new.text,
        }
        if new.reply_to is not None:
            event["reply_to"] = new.reply_to
        await source_topics["content_events"].send(key=str(user).encode(), value=encode_json(event))
        if new.reply_to is not None:
            # A reply is also the `reply` engagement the features and the bandit count, when the
            # tweet replied to is known (its author is part of the engagement).
            replied = await ServingReads(redis_client()).tweets([new.reply_to])
            if new.reply_to in replied:
                author = int(replied[new.reply_to]["author_id"])
                reply = engagement_event(
                    f"reply-{tweet_id}", now_ms, user, Action("reply", new.reply_to), author
                )
                await source_topics["engagement_events"].send(
                    key=str(user).encode(), value=encode_json(reply)
                )
        return self.json({"tweet_id": tweet_id, "tweet_id_str": str(tweet_id)}, status=201)


async def authorized_action(
    view: View, request: Request, parse: Callable[[bytes, int], Action | HttpError]
) -> tuple[int, Action] | Response:
    """The caller and the button's action, or the 401, 429 or 400 to answer, as for posts."""
    user = authorize(request.headers.get("Authorization"), None, settings.secrets, time.time())
    if isinstance(user, HttpError):
        return refuse(view, user)
    wait = action_limiter.allow(user, time.monotonic())
    if wait is not None:
        return refuse(view, too_many_requests(wait, "actions"))
    action = parse(await request.read(), user)
    if isinstance(action, HttpError):
        return refuse(view, action)
    return user, action


async def publish_action(view: View, topic: str, user: int, event: dict[str, Any]) -> Response:
    await source_topics[topic].send(key=str(user).encode(), value=encode_json(event))
    return view.json({"event_id": event["event_id"]}, status=202)


def action_event_id(now_ms: int) -> str:
    # Snowflake ids are unique across workers, so a button's event is never taken for a replay.
    return f"web-{tweet_ids.next_id(now_ms)}"


@app.page("/engagements")
class Engagements(View):
    """Like, retweet, not interested (and their undoing) on a tweet, into `engagement_events`."""

    async def post(self, request: Request) -> Response:
        caller = await authorized_action(self, request, lambda body, _: parse_engagement(body))
        if not isinstance(caller, tuple):
            return caller
        user, action = caller
        # The author comes from the tweet store, not the caller, so nobody can credit an
        # engagement to an author who did not write the tweet.
        tweet = (await ServingReads(redis_client()).tweets([action.target])).get(action.target)
        if tweet is None:
            return refuse(self, HttpError(404, f"no tweet {action.target}: deleted, or not yet known"))
        now_ms = int(time.time() * 1000)
        event = engagement_event(action_event_id(now_ms), now_ms, user, action, int(tweet["author_id"]))
        return await publish_action(self, "engagement_events", user, event)


@app.page("/relationships")
class Relationships(View):
    """Follow, mute, block (and their undoing) of another user, into `social_graph_events`."""

    async def post(self, request: Request) -> Response:
        caller = await authorized_action(self, request, parse_relationship)
        if not isinstance(caller, tuple):
            return caller
        user, action = caller
        now_ms = int(time.time() * 1000)
        event = relationship_event(action_event_id(now_ms), now_ms, user, action)
        return await publish_action(self, "social_graph_events", user, event)


def sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@app.page(TIMELINE_ROUTE + "/events")
class TimelineEvents(View):
    """Server-sent events: `new` with how many items newer than `since_id` the timeline now holds.

    Read with fetch() and the Authorization header, not EventSource: a token in a URL ends up in
    logs and history, and one way to authenticate is one way to get it wrong. Each tick reads the
    timeline as `GET` does, so a notice counts exactly what a read would show (pulled celebrity
    tweets in, muted authors out).
    """

    async def get(self, request: Request, user_id: str) -> Response | web.StreamResponse:
        checked = check_events_request(
            request.headers.get("Authorization"), user_id, request.query, settings.secrets, time.time()
        )
        if isinstance(checked, HttpError):
            return refuse(self, checked)
        user, since_id = checked
        wait = read_limiter.allow(user, time.monotonic())
        if wait is not None:
            return refuse(self, too_many_requests(wait, "timeline reads"))
        raw = cast(web.Request, request)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", **PAGE_HEADERS}
        )
        await response.prepare(raw)
        started = last_beat = time.monotonic()
        sent: int | None = None
        try:
            while not closing.is_set() and time.monotonic() - started < EVENTS_STREAM_S:
                if isinstance(
                    authorize(request.headers.get("Authorization"), user, settings.secrets, time.time()),
                    HttpError,
                ):
                    await response.write(sse("expired", {"error": "the token expired; log in again"}))
                    break
                try:
                    items = (await reader().latest(user, MAX_LIMIT, None, int(time.time() * 1000))).items
                except (NotReady, *REDIS_UNAVAILABLE):
                    items = []
                if since_id is None:
                    since_id = items[0]["tweet_id"] if items else 0
                newer = [item["tweet_id"] for item in items if item["tweet_id"] > since_id]
                if len(newer) != sent:
                    sent = len(newer)
                    newest = str(newer[0]) if newer else None
                    await response.write(sse("new", {"count": sent, "newest_id_str": newest}))
                    last_beat = time.monotonic()
                elif time.monotonic() - last_beat >= EVENTS_HEARTBEAT_S:
                    await response.write(b": alive\n\n")
                    last_beat = time.monotonic()
                try:
                    await asyncio.wait_for(closing.wait(), settings.events_poll_ms / 1000)
                except TimeoutError:
                    pass
        except ConnectionResetError:
            pass  # the page went away
        return response


async def end_streams(_: web.Application) -> None:
    closing.set()


# Faust builds the aiohttp application when the first view registers.
cast(Any, app.web).web_app.on_shutdown.append(end_streams)


@app.page("/")
class Page(View):
    async def get(self, request: Request) -> Response:
        return self.html(PAGE, headers=PAGE_HEADERS)


@app.page("/dev/login")
class DevLogin(View):
    """Mints a token for any user: only in the embedded default (`homemixer up`), never in production."""

    async def post(self, request: Request) -> Response:
        if not settings.dev_login:
            return refuse(
                self, HttpError(404, "dev login is off; use a token from `homemixer token USER_ID`")
            )
        user = parse_dev_login(await request.read())
        if isinstance(user, HttpError):
            return refuse(self, user)
        return self.json({"token": mint_token(settings.secrets, user, settings.token_ttl_s)})
