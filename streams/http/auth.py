"""Bearer tokens: `<user_id>.<expires_at>.<signature>`, signed by itsdangerous with HOMEMIXER_SECRET.

Stateless on purpose: any worker can check a token without asking another one. The user id stays
readable (the page at `GET /` takes it from a pasted token); the signature covers it and the
expiry (seconds since the epoch). Several secrets may verify at once, so that a secret can be
rotated without logging everyone out: the first signs, every one verifies.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import TypeAlias

from itsdangerous import BadSignature, Signer

from streams.settings import DEFAULT_TOKEN_TTL_S

# A value signed with the same secret for another purpose is not a token.
SALT = "homemixer.bearer"
# User ids are positive: a token for 0 names no user.
_CLAIMS = re.compile(rb"([1-9][0-9]*)\.([0-9]+)")

Secrets: TypeAlias = str | Sequence[str]
"""One secret, or the secrets in force, newest (the signing one) first."""


class InvalidToken(Exception):
    """Why a token is refused, in words for the person calling."""


class ExpiredToken(InvalidToken):
    pass


def _signer(secrets: Secrets) -> Signer:
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not keys:
        raise ValueError("no secret to sign or verify tokens with")
    # itsdangerous signs with the last key of its list and verifies with any of them.
    return Signer(keys[::-1], salt=SALT, digest_method=hashlib.sha256)


def mint_token(
    secrets: Secrets, user_id: int, ttl_s: int = DEFAULT_TOKEN_TTL_S, now_s: float | None = None
) -> str:
    """A token for `user_id`, valid for `ttl_s` seconds from `now_s` (default: now)."""
    if ttl_s <= 0:
        raise ValueError(f"a token's time to live must be positive, got {ttl_s}")
    expires_at = int(time.time() if now_s is None else now_s) + ttl_s
    return _signer(secrets).sign(f"{user_id}.{expires_at}").decode()


def verify_token(secrets: Secrets, token: str, now_s: float) -> int:
    """The user id the token was minted for; InvalidToken when it is malformed, forged or signed
    with a secret no longer listed, ExpiredToken when its time is up."""
    claims = _signed_claims((secrets,) if isinstance(secrets, str) else tuple(secrets), token)
    if claims is None:
        raise InvalidToken("invalid or forged token")
    user_id, expires_at = claims
    if now_s >= expires_at:
        when = datetime.fromtimestamp(expires_at, UTC).isoformat(timespec="seconds")
        raise ExpiredToken(f"the token expired at {when}")
    return user_id


# A reader sends the same token with every request, and checking its signature was a tenth of a
# latest read's Python; what a token claims never changes, so it is checked once per secrets.
@lru_cache(maxsize=65_536)
def _signed_claims(secrets: tuple[str, ...], token: str) -> tuple[int, int] | None:
    """(user id, expiry) of a token signed with one of `secrets`; None if it is not."""
    try:
        claims = _signer(secrets).unsign(token)
    except BadSignature:
        return None
    match = _CLAIMS.fullmatch(claims)
    return None if match is None else (int(match[1]), int(match[2]))
