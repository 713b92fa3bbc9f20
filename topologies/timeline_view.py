"""The timeline web view: `GET /timelines/{user_id}`, `POST /tweets`, the page at `GET /`.

Any worker answers any user: the read path needs only Redis, which the nodes keep current.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

from faust.web import Request, Response, View

from streams.app import app, redis_client, settings
from streams.http.auth import mint_token
from streams.http.rules import (
    HttpError,
    RateLimiter,
    authorize,
    check_timeline_request,
    error_body,
    page_security_headers,
    parse_dev_login,
    parse_new_tweet,
    too_many_requests,
)
from streams.ingest.codec import encode_json
from streams.ranked.reader import RankedReader
from streams.serving.view import ServingReads
from streams.snowflake import SnowflakeGenerator
from streams.timelines.cache import TimelineCache
from streams.timelines.reader import NotReady, TimelineReader
from topologies.topics import source_topics

read_limiter = RateLimiter(settings.read_rate)
post_limiter = RateLimiter(settings.post_rate)
tweet_ids = SnowflakeGenerator(settings.snowflake_worker)
PAGE = (resources.files("streams.http") / "static" / "index.html").read_text("utf-8")
PAGE_HEADERS = page_security_headers(PAGE)
RETRY_NOT_READY_S = 2
TIMELINE_ROUTE = "/timelines/{user_id}"


def reader() -> TimelineReader:
    redis = redis_client()
    return TimelineReader(
        ServingReads(redis),
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
            return refuse(self, HttpError(503, str(exc), (("Retry-After", str(RETRY_NOT_READY_S)),)))
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
        return self.json({"tweet_id": tweet_id, "tweet_id_str": str(tweet_id)}, status=201)


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
