"""The rules of the HTTP API (../shared/CONTRACT.md, "HTTP"), apart from the web server.

Pure: no I/O and no clock (the caller passes `now_s`), so every status path is tested directly and
the Faust views only wire requests to these functions and results to responses. Each function
answers either the parsed value or an `HttpError` carrying the status, the message a person can
act on, and any header the status requires (`WWW-Authenticate` on 401, `Retry-After` on 429).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import orjson

from streams.http.auth import InvalidToken, Secrets, verify_token
from streams.ingest.parser import MAX_TEXT_CHARS

# User and tweet ids are positive and travel as Avro `long`: anything larger cannot be an id.
MAX_ID = (1 << 63) - 1
# Home Mixer serves 50 per page by default; 200 bounds the work one request can ask for.
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# A 280-character tweet is at most 3.4 KB of JSON (each astral character escaped as two \uXXXX);
# a larger body is not a tweet, and is refused before it is parsed.
MAX_TWEET_BODY_BYTES = 16 * 1024
# A login body is one small integer; this is generous and still refuses junk before parsing.
MAX_LOGIN_BODY_BYTES = 1024
# RFC 6750 §3: a 401 for a bearer-protected resource names the scheme it expects.
WWW_AUTHENTICATE = 'Bearer realm="homemixer"'
HOW_TO_AUTHENTICATE = "send `Authorization: Bearer <token>`; get a token with `homemixer token USER_ID`"

Mode = Literal["latest", "ranked"]
MODES: tuple[Mode, ...] = ("latest", "ranked")
TIMELINE_PARAMETERS = ("limit", "max_id", "mode", "record")
# Plain ASCII digits only: int() would also take "+5", " 5", "5_000" and Arabic-Indic digits.
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class HttpError:
    """A refusal: the status, a message for the person calling, and headers the status needs."""

    status: int
    message: str
    headers: tuple[tuple[str, str], ...] = ()


def error_body(err: HttpError) -> dict[str, object]:
    """The JSON body of every error response, the same shape for every status."""
    return {"error": err.message, "status": err.status}


# ---------------------------------------------------------------------------------------------
# Authentication


AuthResult: TypeAlias = int | HttpError
"""The authenticated user id, or the 401/403 to answer."""


def _unauthorized(problem: str) -> HttpError:
    return HttpError(401, f"{problem}: {HOW_TO_AUTHENTICATE}", (("WWW-Authenticate", WWW_AUTHENTICATE),))


def authorize(
    authorization_header: str | None, path_user_id: int | None, secrets: Secrets, now_s: float
) -> AuthResult:
    """Who is calling, checked against the user the path names (None: any authenticated user),
    with a token unexpired at `now_s`.

    Authentication comes before everything else, so an unauthenticated caller learns nothing about
    a user's data, not even whether a parameter was valid. The scheme name is case-insensitive
    (RFC 7235 §2.1).
    """
    if authorization_header is None or not authorization_header.strip():
        return _unauthorized("missing bearer token")
    scheme, _, token = authorization_header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return _unauthorized("malformed Authorization header")
    try:
        user_id = verify_token(secrets, token, now_s)
    except InvalidToken as exc:
        return _unauthorized(str(exc))
    if path_user_id is not None and path_user_id != user_id:
        return HttpError(403, f"this token is for user {user_id}; it cannot read user {path_user_id}'s data")
    return user_id


# ---------------------------------------------------------------------------------------------
# GET /timelines/{user_id}


@dataclass(frozen=True, slots=True)
class TimelineQuery:
    user_id: int
    limit: int = DEFAULT_LIMIT
    max_id: int | None = None
    mode: Mode = "latest"
    # A ranked read a person asked for is recorded as served (the "previously served" filter, the
    # bandit's arm counts, the calibration); a page's background refresh sends `record=0`, so an
    # open tab nobody looks at does not count as serving anything.
    record: bool = True


def parse_id(raw: str) -> int | None:
    """A positive id written in plain decimal digits, or None."""
    if not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ID else None


def parse_timeline_query(path_user_id: str, query: Mapping[str, str]) -> TimelineQuery | HttpError:
    """The timeline request's parameters, or a 400 naming the parameter and what it accepts.

    An empty value counts as absent (the contract's own example sends `max_id=`). A parameter
    given twice is refused rather than guessed at; this is seen when `query` is a multidict such as
    aiohttp's `request.query`, whose `items()` repeats a key given twice.
    """
    user_id = parse_id(path_user_id)
    if user_id is None:
        return HttpError(400, f"user_id must be a positive integer, got {path_user_id!r}")
    seen: set[str] = set()
    for name, _ in query.items():
        if name not in TIMELINE_PARAMETERS:
            return HttpError(
                400, f"unknown query parameter {name!r}; allowed: {', '.join(TIMELINE_PARAMETERS)}"
            )
        if name in seen:
            return HttpError(400, f"query parameter {name!r} is given more than once")
        seen.add(name)

    limit = DEFAULT_LIMIT
    raw_limit = query.get("limit", "")
    if raw_limit != "":
        if not _DIGITS.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
            return HttpError(400, f"limit must be an integer from 1 to {MAX_LIMIT}, got {raw_limit!r}")
        limit = int(raw_limit)

    max_id: int | None = None
    raw_max_id = query.get("max_id", "")
    if raw_max_id != "":
        max_id = parse_id(raw_max_id)
        if max_id is None:
            return HttpError(400, f"max_id must be a positive integer (a tweet id), got {raw_max_id!r}")

    mode: Mode = "latest"
    raw_mode = query.get("mode", "")
    if raw_mode != "":
        if raw_mode == "latest":
            mode = "latest"
        elif raw_mode == "ranked":
            mode = "ranked"
        else:
            return HttpError(400, f"mode must be one of {', '.join(MODES)}, got {raw_mode!r}")

    raw_record = query.get("record", "")
    if raw_record not in ("", "0", "1"):
        return HttpError(400, f"record must be 0 or 1, got {raw_record!r}")

    return TimelineQuery(user_id=user_id, limit=limit, max_id=max_id, mode=mode, record=raw_record != "0")


def check_timeline_request(
    authorization_header: str | None,
    path_user_id: str,
    query: Mapping[str, str],
    secrets: Secrets,
    now_s: float,
) -> TimelineQuery | HttpError:
    """`authorize` then `parse_timeline_query`, in the order the statuses must come: 401, 403, 400.

    A path id that is not an id cannot belong to the caller, but an authenticated caller is told
    it is a bad parameter (400), not that it is someone else's (403).
    """
    auth = authorize(authorization_header, parse_id(path_user_id), secrets, now_s)
    if isinstance(auth, HttpError):
        return auth
    return parse_timeline_query(path_user_id, query)


def check_events_request(
    authorization_header: str | None,
    path_user_id: str,
    query: Mapping[str, str],
    secrets: Secrets,
    now_s: float,
) -> tuple[int, int | None] | HttpError:
    """`GET /timelines/{user_id}/events?since_id=`: the user and the newest tweet id the caller has
    (None: whatever is newest when the stream opens), or the 401, 403 or 400, in that order."""
    auth = authorize(authorization_header, parse_id(path_user_id), secrets, now_s)
    if isinstance(auth, HttpError):
        return auth
    if parse_id(path_user_id) is None:
        return HttpError(400, f"user_id must be a positive integer, got {path_user_id!r}")
    unknown = sorted(set(query) - {"since_id"})
    if unknown:
        return HttpError(400, f"unknown query parameter(s) {', '.join(unknown)}; allowed: since_id")
    raw = query.get("since_id", "")
    since_id = parse_id(raw) if raw != "" else None
    if raw != "" and since_id is None:
        return HttpError(400, f"since_id must be a positive integer (a tweet id), got {raw!r}")
    return auth, since_id


# ---------------------------------------------------------------------------------------------
# POST /tweets and POST /dev/login


@dataclass(frozen=True, slots=True)
class NewTweet:
    text: str
    reply_to: int | None = None


def _json_object(body: bytes, max_bytes: int, what: str) -> dict[str, object] | HttpError:
    if len(body) > max_bytes:
        return HttpError(413, f"{what} body is {len(body)} bytes; at most {max_bytes} are accepted")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return HttpError(400, f"{what} body must be a JSON object in UTF-8: {exc}")
    if not isinstance(value, dict):
        return HttpError(400, f"{what} body must be a JSON object, got {type(value).__name__}")
    return value


def _positive_id(value: object) -> int | None:
    # bool is an int in Python, but `true` is not an id.
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    return None


def parse_new_tweet(body: bytes) -> NewTweet | HttpError:
    """A tweet to publish, or the 400 (413 when oversized) explaining what is wrong with the body.

    The text is kept as given: it is counted in characters like the parser counts it, so whatever
    passes here also passes the pipeline's own validation of `tweet_create`.
    """
    obj = _json_object(body, MAX_TWEET_BODY_BYTES, "tweet")
    if isinstance(obj, HttpError):
        return obj
    unknown = sorted(set(obj) - {"text", "reply_to"})
    if unknown:
        return HttpError(
            400, f"unknown field(s) {', '.join(unknown)}; a tweet has text and optional reply_to"
        )
    text = obj.get("text")
    if not isinstance(text, str):
        return HttpError(400, f"text is required and must be a string of 1 to {MAX_TEXT_CHARS} characters")
    if not 1 <= len(text) <= MAX_TEXT_CHARS:
        return HttpError(400, f"text has {len(text)} characters; it must have 1 to {MAX_TEXT_CHARS}")
    if not text.strip():
        return HttpError(400, "text must not be only whitespace")
    reply_to: int | None = None
    if obj.get("reply_to") is not None:
        reply_to = _positive_id(obj["reply_to"])
        if reply_to is None:
            return HttpError(
                400, f"reply_to must be a positive integer (a tweet id), got {obj['reply_to']!r}"
            )
    return NewTweet(text=text, reply_to=reply_to)


def parse_dev_login(body: bytes) -> int | HttpError:
    """The user id of a `POST /dev/login` body `{"user_id": N}`, or the 400 to answer."""
    obj = _json_object(body, MAX_LOGIN_BODY_BYTES, "login")
    if isinstance(obj, HttpError):
        return obj
    unknown = sorted(set(obj) - {"user_id"})
    if unknown:
        return HttpError(400, f"unknown field(s) {', '.join(unknown)}; a login has only user_id")
    user_id = _positive_id(obj.get("user_id"))
    if user_id is None:
        return HttpError(400, f"user_id must be a positive integer, got {obj.get('user_id')!r}")
    return user_id


# ---------------------------------------------------------------------------------------------
# POST /engagements and POST /relationships: the page's buttons, as source events

# What a person does to a tweet with a button; impressions, clicks and dwell are the client's
# telemetry, not actions, and a reply is a tweet (POST /tweets with reply_to).
ENGAGEMENT_ACTIONS = ("like", "unlike", "retweet", "unretweet", "not_interested")
RELATIONSHIP_ACTIONS = ("follow", "unfollow", "mute", "unmute", "block", "unblock")
# An action body is a type and one id; this is generous and still refuses junk before parsing.
MAX_ACTION_BODY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Action:
    """A button pressed: its event type and the tweet (engagements) or user (relationships) it is on."""

    type: str
    target: int


def _parse_action(body: bytes, what: str, types: tuple[str, ...], target: str) -> Action | HttpError:
    obj = _json_object(body, MAX_ACTION_BODY_BYTES, what)
    if isinstance(obj, HttpError):
        return obj
    unknown = sorted(set(obj) - {"type", target})
    if unknown:
        return HttpError(400, f"unknown field(s) {', '.join(unknown)}; {what} has type and {target}")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in types:
        return HttpError(400, f"type must be one of {', '.join(types)}, got {kind!r}")
    value = _positive_id(obj.get(target))
    if value is None:
        return HttpError(400, f"{target} must be a positive integer, got {obj.get(target)!r}")
    return Action(kind, value)


def parse_engagement(body: bytes) -> Action | HttpError:
    """`{"type", "tweet_id"}`: an engagement the caller makes, or the 400 (413 when oversized)."""
    return _parse_action(body, "an engagement", ENGAGEMENT_ACTIONS, "tweet_id")


def parse_relationship(body: bytes, user_id: int) -> Action | HttpError:
    """`{"type", "user_id"}`: a follow, mute, block or its undoing by `user_id`, or the 400."""
    action = _parse_action(body, "a relationship", RELATIONSHIP_ACTIONS, "user_id")
    if isinstance(action, Action) and action.target == user_id:
        return HttpError(400, f"user {user_id} cannot {action.type} themselves")
    return action


def engagement_event(
    event_id: str, now_ms: int, user_id: int, action: Action, author_id: int
) -> dict[str, Any]:
    """The `engagement_events` event (CONTRACT.md "Source events") for `action` by `user_id`."""
    return {
        "event_id": event_id,
        "ts": now_ms,
        "type": action.type,
        "user_id": user_id,
        "tweet_id": action.target,
        "author_id": author_id,
    }


def relationship_event(event_id: str, now_ms: int, user_id: int, action: Action) -> dict[str, Any]:
    """The `social_graph_events` event for `action` by `user_id`."""
    return {
        "event_id": event_id,
        "ts": now_ms,
        "type": action.type,
        "src_user_id": user_id,
        "dst_user_id": action.target,
    }


# ---------------------------------------------------------------------------------------------
# Rate limiting

# Checking "refilled to at least one token" exactly would refuse a caller who waited precisely
# the advertised time, because (60 / rate) * (rate / 60) can come out as 0.9999999999999999.
_TOKEN_EPSILON = 1e-9
# Pruning scans every bucket, so it runs after this many calls at the soonest, or after as many
# calls as buckets survived the last pruning if that is more: amortised O(1) per call, and the
# table never grows past twice what was live at the last pruning (plus PRUNE_EVERY).
PRUNE_EVERY = 1024


def retry_after_s(wait_s: float) -> int:
    """`Retry-After` in whole seconds, rounded up (never 0: 0 would invite an immediate retry)."""
    return max(1, math.ceil(wait_s))


def too_many_requests(wait_s: float, what: str = "requests") -> HttpError:
    """The 429 for a refusal by `RateLimiter.allow`, with its `Retry-After`."""
    seconds = retry_after_s(wait_s)
    return HttpError(429, f"too many {what}; retry in {seconds} s", (("Retry-After", str(seconds)),))


class RateLimiter:
    """Per-user token buckets: a burst of `per_minute` requests, then `per_minute` per minute.

    One bucket per user who is not at full capacity. A full bucket is the same as no bucket, so
    full ones are forgotten, lazily (see PRUNE_EVERY): memory follows the users active in about
    the last minute, not every user ever seen. Per worker: a user whose requests are spread over
    several workers gets the limit from each of them.
    """

    def __init__(self, per_minute: int) -> None:
        if per_minute < 1:
            raise ValueError(f"a rate limit must allow at least 1 request per minute, got {per_minute}")
        self.capacity = float(per_minute)
        self.refill_per_s = per_minute / 60.0
        self._buckets: dict[int, tuple[float, float]] = {}  # user_id -> (tokens, at_s)
        self._calls_since_prune = 0
        self._prune_after = PRUNE_EVERY

    def __len__(self) -> int:
        """How many users are tracked (for tests and metrics)."""
        return len(self._buckets)

    def _tokens(self, user_id: int, now_s: float) -> tuple[float, float]:
        bucket = self._buckets.get(user_id)
        if bucket is None:
            return self.capacity, now_s
        tokens, at_s = bucket
        # A clock stepping back refills nothing and does not move the bucket's time back either.
        elapsed = max(0.0, now_s - at_s)
        return min(self.capacity, tokens + elapsed * self.refill_per_s), max(at_s, now_s)

    def allow(self, user_id: int, now_s: float) -> float | None:
        """None when the request may proceed (and is counted), else the seconds until it may."""
        self._calls_since_prune += 1
        if self._calls_since_prune >= self._prune_after:
            self.prune(now_s)
        tokens, at_s = self._tokens(user_id, now_s)
        if tokens >= 1.0 - _TOKEN_EPSILON:
            self._buckets[user_id] = (max(0.0, tokens - 1.0), at_s)
            return None
        self._buckets[user_id] = (tokens, at_s)
        return (1.0 - tokens) / self.refill_per_s

    def prune(self, now_s: float) -> None:
        """Forget every user whose bucket has refilled to capacity by `now_s`."""
        self._calls_since_prune = 0
        full = [
            user_id
            for user_id in self._buckets
            if self._tokens(user_id, now_s)[0] >= self.capacity - _TOKEN_EPSILON
        ]
        for user_id in full:
            del self._buckets[user_id]
        self._prune_after = max(PRUNE_EVERY, len(self._buckets))


NONE = "'none'"


def page_security_headers(page: str) -> dict[str, str]:
    """Headers for the page `GET /` serves: a Content-Security-Policy that allows only its own
    inline script and style (by their SHA-256) and requests to this origin, so nothing injected
    into the page could run; no framing, no MIME sniffing, no referrer."""
    script = " ".join(f"'sha256-{_sha256(body)}'" for body in _inline(page, "script"))
    style = " ".join(f"'sha256-{_sha256(body)}'" for body in _inline(page, "style"))
    policy = (
        f"default-src 'none'; script-src {script or NONE}; style-src {style or NONE}; "
        "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }


def _inline(page: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
