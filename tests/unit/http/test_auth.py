"""Bearer tokens: signing, expiry and secret rotation, with the clock passed in."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streams.http.auth import ExpiredToken, InvalidToken, mint_token, verify_token

NOW = 1_763_769_600.0
DAY_S = 86_400


def test_a_token_verifies_with_its_secret_for_its_user() -> None:
    token = mint_token("s3cret", 42, now_s=NOW)
    assert verify_token("s3cret", token, NOW) == 42
    user, expires_at, _ = token.split(".")
    assert (user, int(expires_at)) == ("42", NOW + DAY_S), "readable, valid for a day by default"


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: "43" + t[2:],  # another user, the signature kept
        lambda t: t.replace(t.split(".")[1], str(int(t.split(".")[1]) + 3600)),  # a later expiry
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the signature altered
        lambda t: t.rsplit(".", 1)[0],  # no signature
        lambda t: "garbage",
        lambda t: "",
    ],
    ids=["other-user", "later-expiry", "altered-signature", "unsigned", "garbage", "empty"],
)
def test_a_forged_token_is_invalid(forge: Callable[[str], str]) -> None:
    token = mint_token("s3cret", 42, now_s=NOW)
    with pytest.raises(InvalidToken, match="invalid or forged") as raised:
        verify_token("s3cret", forge(token), NOW)
    assert not isinstance(raised.value, ExpiredToken)


def test_a_token_of_another_secret_is_invalid() -> None:
    with pytest.raises(InvalidToken, match="invalid or forged"):
        verify_token("s3cret", mint_token("other", 42, now_s=NOW), NOW)


def test_a_signed_token_for_user_zero_names_no_user() -> None:
    with pytest.raises(InvalidToken):
        verify_token("s3cret", mint_token("s3cret", 0, now_s=NOW), NOW)


def test_a_token_expires_after_its_ttl() -> None:
    token = mint_token("s3cret", 42, ttl_s=60, now_s=NOW)
    assert verify_token("s3cret", token, NOW + 59.9) == 42
    with pytest.raises(ExpiredToken, match="expired at 2025-11-22T00:01:00"):
        verify_token("s3cret", token, NOW + 60)
    with pytest.raises(ValueError, match="positive"):
        mint_token("s3cret", 42, ttl_s=0)


def test_rotation_the_first_secret_signs_and_every_listed_one_verifies() -> None:
    old = mint_token("old", 42, now_s=NOW)
    assert verify_token(("new", "old"), old, NOW) == 42, "minted before the rotation"
    new = mint_token(("new", "old"), 42, now_s=NOW)
    assert verify_token("new", new, NOW) == 42, "the first secret signs"
    with pytest.raises(InvalidToken):
        verify_token("old", new, NOW)
    with pytest.raises(InvalidToken):
        verify_token(("new",), old, NOW)  # the old secret dropped
    with pytest.raises(ValueError):
        mint_token((), 42)
