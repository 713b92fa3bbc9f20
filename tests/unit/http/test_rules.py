"""Every status the HTTP rules can answer, and the rate limiter's arithmetic, without a server."""

from __future__ import annotations

import math

import orjson
import pytest
from multidict import MultiDict, MultiDictProxy

from streams.http.auth import mint_token
from streams.http.rules import (
    DEFAULT_LIMIT,
    MAX_ID,
    MAX_LIMIT,
    MAX_TWEET_BODY_BYTES,
    PRUNE_EVERY,
    HttpError,
    NewTweet,
    RateLimiter,
    TimelineQuery,
    authorize,
    check_timeline_request,
    error_body,
    parse_dev_login,
    parse_new_tweet,
    parse_timeline_query,
    retry_after_s,
    too_many_requests,
)

SECRET = "test-secret"
NOW = 1_763_769_600.0


def bearer(user_id: int, secret: str = SECRET) -> str:
    return f"Bearer {mint_token(secret, user_id, now_s=NOW)}"


def error_of(result: object) -> HttpError:
    assert isinstance(result, HttpError), f"expected an HttpError, got {result!r}"
    return result


# ---------------------------------------------------------------------------------------------
# authorize


def test_a_valid_token_for_the_path_user_authenticates() -> None:
    assert authorize(bearer(42), 42, SECRET, NOW) == 42
    assert authorize(bearer(42), None, SECRET, NOW) == 42, "no path user: any authenticated caller"
    spaced = f"bearer  {mint_token(SECRET, 42, now_s=NOW)} "
    assert authorize(spaced, 42, SECRET, NOW) == 42, "scheme is case-insensitive"


@pytest.mark.parametrize(
    "header",
    [None, "", "   "],
    ids=["absent", "empty", "blank"],
)
def test_missing_header_is_401_with_instructions(header: str | None) -> None:
    err = error_of(authorize(header, 42, SECRET, NOW))
    assert err.status == 401
    assert "missing" in err.message
    assert "Authorization: Bearer <token>" in err.message
    assert "homemixer token USER_ID" in err.message
    assert ("WWW-Authenticate", 'Bearer realm="homemixer"') in err.headers


@pytest.mark.parametrize(
    "header",
    [
        mint_token(SECRET, 42, now_s=NOW),  # no scheme
        f"Basic {mint_token(SECRET, 42, now_s=NOW)}",
        "Bearer",
        "Bearer ",
        f"Bearer {mint_token(SECRET, 42, now_s=NOW)} extra",
        f"Token {mint_token(SECRET, 42, now_s=NOW)}",
    ],
    ids=["no-scheme", "basic", "scheme-only", "scheme-space", "two-tokens", "other-scheme"],
)
def test_malformed_header_is_401(header: str) -> None:
    err = error_of(authorize(header, 42, SECRET, NOW))
    assert err.status == 401
    assert "malformed" in err.message
    assert "homemixer token USER_ID" in err.message


@pytest.mark.parametrize(
    "header",
    [
        bearer(42, secret="another-secret"),
        "Bearer 43" + mint_token(SECRET, 42, now_s=NOW)[2:],  # user id swapped, signature kept
        "Bearer garbage",
        "Bearer 42.1.",
        f"Bearer {mint_token(SECRET, 0, now_s=NOW)}",  # signed, but 0 is not a user id
    ],
    ids=["other-secret", "swapped-user", "garbage", "empty-signature", "user-zero"],
)
def test_bad_or_forged_token_is_401(header: str) -> None:
    err = error_of(authorize(header, 42, SECRET, NOW))
    assert err.status == 401
    assert "Authorization: Bearer <token>" in err.message


def test_an_expired_token_is_401_saying_it_expired() -> None:
    header = f"Bearer {mint_token(SECRET, 42, ttl_s=60, now_s=NOW)}"
    assert authorize(header, 42, SECRET, NOW + 59) == 42
    err = error_of(authorize(header, 42, SECRET, NOW + 60))
    assert err.status == 401
    assert "expired" in err.message and "homemixer token USER_ID" in err.message
    assert ("WWW-Authenticate", 'Bearer realm="homemixer"') in err.headers


def test_a_token_of_a_rotated_out_secret_is_401_once_it_is_dropped() -> None:
    header = bearer(42, secret="old")
    assert authorize(header, 42, ("new", "old"), NOW) == 42
    assert error_of(authorize(header, 42, ("new",), NOW)).status == 401


def test_a_valid_token_of_another_user_is_403() -> None:
    err = error_of(authorize(bearer(42), 43, SECRET, NOW))
    assert err.status == 403
    assert "42" in err.message and "43" in err.message


def test_a_forged_token_is_401_even_for_another_users_path() -> None:
    assert error_of(authorize(bearer(43, secret="x"), 42, SECRET, NOW)).status == 401


def test_error_body_has_message_and_status() -> None:
    assert error_body(HttpError(403, "nope")) == {"error": "nope", "status": 403}
    assert orjson.loads(orjson.dumps(error_body(HttpError(400, "bad")))) == {"error": "bad", "status": 400}


# ---------------------------------------------------------------------------------------------
# parse_timeline_query


def test_timeline_defaults() -> None:
    assert parse_timeline_query("42", {}) == TimelineQuery(
        user_id=42, limit=DEFAULT_LIMIT, max_id=None, mode="latest"
    )
    assert DEFAULT_LIMIT == 50


def test_timeline_all_parameters() -> None:
    q = parse_timeline_query("42", {"limit": "7", "max_id": str(MAX_ID), "mode": "ranked"})
    assert q == TimelineQuery(user_id=42, limit=7, max_id=MAX_ID, mode="ranked")


def test_empty_values_count_as_absent() -> None:
    # The contract's own example: `?limit=50&max_id=&mode=latest`.
    assert parse_timeline_query("42", {"limit": "50", "max_id": "", "mode": "latest"}) == TimelineQuery(42)
    assert parse_timeline_query("42", {"limit": "", "mode": ""}) == TimelineQuery(42)


@pytest.mark.parametrize("limit", ["1", str(MAX_LIMIT)])
def test_limit_bounds_are_accepted(limit: str) -> None:
    q = parse_timeline_query("42", {"limit": limit})
    assert isinstance(q, TimelineQuery)
    assert q.limit == int(limit)
    assert MAX_LIMIT == 200


@pytest.mark.parametrize("limit", ["0", "201", "-1", "abc", "1.5", "+5", " 5", "5_0", "٥", "1e2"])
def test_bad_limit_is_400_naming_the_range(limit: str) -> None:
    err = error_of(parse_timeline_query("42", {"limit": limit}))
    assert err.status == 400
    assert "limit" in err.message and "1 to 200" in err.message


@pytest.mark.parametrize("user_id", ["0", "-1", "abc", "", str(MAX_ID + 1), "4 2", "42x"])
def test_bad_path_user_id_is_400(user_id: str) -> None:
    err = error_of(parse_timeline_query(user_id, {}))
    assert err.status == 400
    assert "user_id" in err.message


@pytest.mark.parametrize("max_id", ["0", "-5", "abc", str(MAX_ID + 1), "1.0"])
def test_bad_max_id_is_400(max_id: str) -> None:
    err = error_of(parse_timeline_query("42", {"max_id": max_id}))
    assert err.status == 400
    assert "max_id" in err.message


@pytest.mark.parametrize("mode", ["LATEST", "top", "ranked ", "0"])
def test_bad_mode_is_400_listing_the_allowed_values(mode: str) -> None:
    err = error_of(parse_timeline_query("42", {"mode": mode}))
    assert err.status == 400
    assert "mode" in err.message and "latest" in err.message and "ranked" in err.message


def test_record_is_on_unless_a_background_refresh_turns_it_off() -> None:
    assert parse_timeline_query("42", {"mode": "ranked"}) == TimelineQuery(42, mode="ranked", record=True)
    assert parse_timeline_query("42", {"record": "1"}) == TimelineQuery(42, record=True)
    assert parse_timeline_query("42", {"record": ""}) == TimelineQuery(42, record=True)
    assert parse_timeline_query("42", {"mode": "ranked", "record": "0"}) == TimelineQuery(
        42, mode="ranked", record=False
    )


@pytest.mark.parametrize("record", ["no", "false", "2", " 0", "00"])
def test_bad_record_is_400(record: str) -> None:
    err = error_of(parse_timeline_query("42", {"record": record}))
    assert err.status == 400 and "record must be 0 or 1" in err.message


def test_unknown_parameter_is_400_naming_it_and_the_allowed_ones() -> None:
    err = error_of(parse_timeline_query("42", {"limit": "5", "cursor": "abc"}))
    assert err.status == 400
    assert "'cursor'" in err.message
    assert "limit" in err.message and "max_id" in err.message and "mode" in err.message


def test_a_repeated_parameter_is_400() -> None:
    query = MultiDictProxy(MultiDict([("limit", "5"), ("limit", "500")]))
    err = error_of(parse_timeline_query("42", query))
    assert err.status == 400
    assert "limit" in err.message and "more than once" in err.message


def test_check_timeline_request_orders_401_then_403_then_400() -> None:
    assert error_of(check_timeline_request(None, "43", {"limit": "0"}, SECRET, NOW)).status == 401
    assert error_of(check_timeline_request(bearer(42), "43", {"limit": "0"}, SECRET, NOW)).status == 403
    assert error_of(check_timeline_request(bearer(42), "42", {"limit": "0"}, SECRET, NOW)).status == 400
    assert error_of(check_timeline_request(bearer(42), "abc", {}, SECRET, NOW)).status == 400
    assert check_timeline_request(bearer(42), "42", {"mode": "ranked"}, SECRET, NOW) == TimelineQuery(
        42, mode="ranked"
    )


# ---------------------------------------------------------------------------------------------
# parse_new_tweet


def tweet_body(**fields: object) -> bytes:
    return orjson.dumps(fields)


@pytest.mark.parametrize("length", [1, 280])
def test_tweet_text_lengths_accepted(length: int) -> None:
    assert parse_new_tweet(tweet_body(text="x" * length)) == NewTweet(text="x" * length)


def test_tweet_text_counts_characters_not_bytes_and_is_kept_as_given() -> None:
    text = " 🐦" * 140  # 280 characters, 700 bytes of UTF-8, leading space kept
    assert parse_new_tweet(tweet_body(text=text)) == NewTweet(text=text)


@pytest.mark.parametrize("length", [0, 281])
def test_tweet_text_lengths_rejected(length: int) -> None:
    err = error_of(parse_new_tweet(tweet_body(text="x" * length)))
    assert err.status == 400
    assert "text" in err.message and f"{length} characters" in err.message


@pytest.mark.parametrize("text", [" ", "\n\t  ", "\u3000"])
def test_whitespace_only_text_is_rejected(text: str) -> None:
    err = error_of(parse_new_tweet(tweet_body(text=text)))
    assert err.status == 400
    assert "whitespace" in err.message


def test_reply_to() -> None:
    assert parse_new_tweet(tweet_body(text="hi", reply_to=9)) == NewTweet("hi", reply_to=9)
    assert parse_new_tweet(tweet_body(text="hi", reply_to=None)) == NewTweet("hi")
    for bad in (b"0", b"-1", b'"9"', b"1.5", b"true", str(MAX_ID + 1).encode()):
        err = error_of(parse_new_tweet(b'{"text": "hi", "reply_to": ' + bad + b"}"))
        assert err.status == 400, bad
        assert "reply_to" in err.message


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'"text"',
        b'["hi"]',
        b"null",
        b'{"text": "hi"',
        b'{"text": "\\ud800"}',  # a lone surrogate cannot be published as UTF-8
        b'{"text": "\xff"}',
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(body: bytes) -> None:
    err = error_of(parse_new_tweet(body))
    assert err.status == 400
    assert "JSON object" in err.message


@pytest.mark.parametrize("body", [b"{}", b'{"text": 5}', b'{"text": null}', b'{"text": ["hi"]}'])
def test_missing_or_non_string_text_is_400(body: bytes) -> None:
    err = error_of(parse_new_tweet(body))
    assert err.status == 400
    assert "text" in err.message


def test_other_fields_are_400() -> None:
    err = error_of(parse_new_tweet(tweet_body(text="hi", author_id=7)))
    assert err.status == 400
    assert "author_id" in err.message


def test_an_oversized_body_is_413_before_parsing() -> None:
    err = error_of(parse_new_tweet(b" " * (MAX_TWEET_BODY_BYTES + 1)))
    assert err.status == 413


def test_dev_login() -> None:
    assert parse_dev_login(b'{"user_id": 42}') == 42
    for body in (b"{}", b'{"user_id": 0}', b'{"user_id": "42"}', b'{"user_id": 4, "x": 1}', b"42", b"nope"):
        assert error_of(parse_dev_login(body)).status == 400, body


# ---------------------------------------------------------------------------------------------
# RateLimiter


@pytest.mark.parametrize("per_minute", [1, 7, 60, 600])
def test_burst_of_exactly_per_minute_then_wait_then_allowed(per_minute: int) -> None:
    limiter = RateLimiter(per_minute)
    now = 1000.0
    for i in range(per_minute):
        assert limiter.allow(1, now) is None, f"request {i + 1} of the burst"
    wait = limiter.allow(1, now)
    assert wait is not None and wait > 0
    assert wait == pytest.approx(60 / per_minute)
    assert limiter.allow(1, now + wait / 2) is not None, "half the wait is not enough"
    assert limiter.allow(1, now + wait) is None, "allowed after exactly the advertised wait"
    assert limiter.allow(1, now + wait) is not None, "and only one request then"


def test_refused_requests_do_not_consume_tokens() -> None:
    limiter = RateLimiter(60)
    for _ in range(60):
        assert limiter.allow(1, 0.0) is None
    for _ in range(100):
        assert limiter.allow(1, 0.5) is not None
    assert limiter.allow(1, 1.0) is None, "one token refilled after 1 s despite the refusals"


def test_refill_is_capped_at_capacity() -> None:
    limiter = RateLimiter(10)
    assert limiter.allow(1, 0.0) is None
    later = 10_000.0
    allowed = sum(limiter.allow(1, later) is None for _ in range(50))
    assert allowed == 10


def test_users_are_independent() -> None:
    limiter = RateLimiter(3)
    for _ in range(3):
        assert limiter.allow(1, 0.0) is None
    assert limiter.allow(1, 0.0) is not None
    for _ in range(3):
        assert limiter.allow(2, 0.0) is None, "user 2 has its own bucket"
    assert limiter.allow(2, 0.0) is not None


def test_a_clock_stepping_back_grants_nothing() -> None:
    limiter = RateLimiter(60)
    for _ in range(60):
        assert limiter.allow(1, 100.0) is None
    assert limiter.allow(1, 50.0) is not None
    wait = limiter.allow(1, 100.0)
    assert wait == pytest.approx(1.0)


def test_full_buckets_are_forgotten() -> None:
    limiter = RateLimiter(60)
    for user in range(1, 501):
        assert limiter.allow(user, 0.0) is None
    assert len(limiter) == 500
    limiter.prune(0.5)
    assert len(limiter) == 500, "half a token short: still remembered"
    limiter.prune(1.0)
    assert len(limiter) == 0


def test_memory_stays_bounded_under_many_distinct_users() -> None:
    limiter = RateLimiter(60)
    # One new user per 10 ms: a bucket is full again 1 s after its only request, so about 100
    # buckets are live at a time; lazy pruning must keep the table near that, not at 20000.
    peak = 0
    for i in range(20_000):
        assert limiter.allow(i + 1, i * 0.01) is None
        peak = max(peak, len(limiter))
    assert peak <= PRUNE_EVERY + 200
    assert len(limiter) < 20_000 // 4


def test_pruning_keeps_users_that_are_still_limited() -> None:
    limiter = RateLimiter(2)
    assert limiter.allow(7, 0.0) is None
    assert limiter.allow(7, 0.0) is None
    for i in range(PRUNE_EVERY * 2):
        limiter.allow(1_000_000 + i, 1.0)
    assert limiter.allow(7, 1.0) is not None, "pruning must not reset a limited user"


def test_rate_limiter_rejects_a_zero_rate() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_retry_after_rounds_up_and_is_never_zero() -> None:
    assert retry_after_s(0.0001) == 1
    assert retry_after_s(1.0) == 1
    assert retry_after_s(1.2) == 2
    assert retry_after_s(60 / 7) == math.ceil(60 / 7) == 9
    err = too_many_requests(8.5, "tweets")
    assert err.status == 429
    assert ("Retry-After", "9") in err.headers
    assert "tweets" in err.message


def test_memory_follows_the_live_users_when_most_are_limited() -> None:
    limiter = RateLimiter(1)  # a request takes 60 s to refill: each user below stays live a minute
    for user in range(1, 5001):
        assert limiter.allow(user, 0.0) is None
    assert len(limiter) == 5000, "all still limited: none may be forgotten"
    # Then one new user per 100 ms: about 600 live at a time.
    peak = 0
    for i in range(15_000):
        assert limiter.allow(5001 + i, 100.0 + i * 0.1) is None
        peak = max(peak, len(limiter))
    assert peak <= 2 * 5000 + PRUNE_EVERY, "at most twice what was live at the last pruning"
    assert len(limiter) <= 600 + PRUNE_EVERY + 10, "the 5000 early users are forgotten"
    assert limiter.allow(1, 2000.0) is None, "a forgotten user starts again with a full bucket"


def test_the_page_allows_only_its_own_inline_script_and_style() -> None:
    import base64
    import hashlib
    from importlib import resources

    from streams.http.rules import page_security_headers

    page = (resources.files("streams.http") / "static" / "index.html").read_text("utf-8")
    headers = page_security_headers(page)
    policy = headers["Content-Security-Policy"]
    script = page.split("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in policy
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy
    assert headers["X-Frame-Options"] == "DENY"
