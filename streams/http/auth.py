"""Bearer tokens: `<user_id>.<issued_at>.<hmac>` signed with HOMEMIXER_SECRET.

Stateless on purpose: any worker can check a token without asking another one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time


def _signature(secret: str, user_id: int, issued_at: int) -> str:
    mac = hmac.new(secret.encode(), f"{user_id}.{issued_at}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def mint_token(secret: str, user_id: int, issued_at: int | None = None) -> str:
    issued = int(time.time()) if issued_at is None else issued_at
    return f"{user_id}.{issued}.{_signature(secret, user_id, issued)}"


def verify_token(secret: str, token: str) -> int | None:
    """The user id the token was minted for, or None when it is malformed or forged."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    user_id, issued = int(parts[0]), int(parts[1])
    if not hmac.compare_digest(parts[2], _signature(secret, user_id, issued)):
        return None
    return user_id
