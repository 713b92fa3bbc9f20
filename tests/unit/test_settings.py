"""Settings rules that guard a worker before it starts."""

from __future__ import annotations

import pytest

from streams.settings import DEFAULT_SECRET, DEFAULT_TOKEN_TTL_S, Settings, unsafe_secret


def test_the_public_default_secret_is_refused_beyond_loopback_only() -> None:
    assert unsafe_secret(Settings.from_env({})) is None, "loopback by default"
    exposed = Settings.from_env({"WEB_BIND": "0.0.0.0"})
    assert exposed.secrets == (DEFAULT_SECRET,)
    reason = unsafe_secret(exposed)
    assert reason is not None and "HOMEMIXER_SECRET" in reason
    assert unsafe_secret(Settings.from_env({"WEB_BIND": "0.0.0.0", "HOMEMIXER_SECRET": "s3cret"})) is None


def test_the_public_default_secret_is_refused_wherever_it_is_listed() -> None:
    listed = Settings.from_env({"WEB_BIND": "0.0.0.0", "HOMEMIXER_SECRET": f"s3cret,{DEFAULT_SECRET}"})
    assert unsafe_secret(listed) is not None, "every listed secret verifies tokens"


def test_secrets_are_listed_newest_first_comma_separated() -> None:
    assert Settings.from_env({"HOMEMIXER_SECRET": "new, old"}).secrets == ("new", "old")
    assert Settings.from_env({"HOMEMIXER_SECRET": ""}).secrets == (DEFAULT_SECRET,)
    with pytest.raises(SystemExit, match="empty secret"):
        Settings.from_env({"HOMEMIXER_SECRET": "new,,old"})


def test_token_ttl_is_a_day_unless_set_and_must_be_positive() -> None:
    assert Settings.from_env({}).token_ttl_s == DEFAULT_TOKEN_TTL_S == 86_400
    assert Settings.from_env({"HOMEMIXER_TOKEN_TTL_S": "600"}).token_ttl_s == 600
    with pytest.raises(SystemExit, match="must be positive"):
        Settings.from_env({"HOMEMIXER_TOKEN_TTL_S": "0"})
