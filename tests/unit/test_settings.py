"""Settings rules that guard a worker before it starts."""

from __future__ import annotations

from streams.settings import DEFAULT_SECRET, Settings, unsafe_secret


def test_the_public_default_secret_is_refused_beyond_loopback_only() -> None:
    assert unsafe_secret(Settings.from_env({})) is None, "loopback by default"
    exposed = Settings.from_env({"WEB_BIND": "0.0.0.0"})
    assert exposed.secret == DEFAULT_SECRET
    reason = unsafe_secret(exposed)
    assert reason is not None and "HOMEMIXER_SECRET" in reason
    assert unsafe_secret(Settings.from_env({"WEB_BIND": "0.0.0.0", "HOMEMIXER_SECRET": "s3cret"})) is None
