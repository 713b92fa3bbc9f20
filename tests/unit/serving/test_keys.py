"""The Redis layout is a stored format: these are the keys, members and fields Redis already holds."""

from redis.crc import key_slot

from streams.serving import keys
from streams.serving.keys import RedisKeys, app_pattern, app_prefix


def test_keys_members_and_fields_are_what_redis_already_holds() -> None:
    app = RedisKeys("homemixer")
    assert app.timeline_key(7) == "homemixer:tl:{7}"
    assert app.served_by_key(7) == "homemixer:servedby:{7}"
    assert app.ready_key(3, "0") == "homemixer:ready:{0}:3"
    assert app.calibration_served_key(7) == "homemixer:cal:{cal}:7"
    assert app.calibration_pending == "homemixer:cal:{cal}:pending"
    assert app.calibration == "homemixer:calibration:{cal}"
    assert app.features_key("user_author", "1:2") == "homemixer:f:user_author:1:2"
    assert app.celebrities == "homemixer:celebs"
    assert keys.served_tag("adaptive", "conversation-heavy") == "adaptive/conversation-heavy"
    assert keys.pending_member(7, 101) == "7:101"
    assert keys.outcome_field(101, "profile_click") == "101:profile_click"


def test_every_key_of_an_app_starts_with_its_prefix() -> None:
    app = RedisKeys("blue")
    built = [
        app.timeline_key(1),
        app.following_key(1),
        app.authored_key(1),
        app.tweet_key(1),
        app.blocks_key(1),
        app.blocked_by_key(1),
        app.mutes_key(1),
        app.ready_key(0, "0"),
        app.features_key("tweet", "1"),
        app.not_interested_key(1),
        app.served_key(1),
        app.served_by_key(1),
        app.adaptation_key("control"),
        app.calibration_served_key(1),
        app.feedback_key(1),
        app.celebrities,
        app.active,
        app.trending,
        app.calibration,
        app.calibration_pending,
    ]
    assert all(key.startswith("blue:") for key in built)
    assert app_prefix("blue") == app.prefix == "blue:"


def test_the_module_keys_are_the_environments_app() -> None:
    assert keys.timeline_key(7) == keys.KEYS.timeline_key(7) == f"{keys.KEYS.prefix}tl:{{7}}"


def test_a_users_keys_read_together_share_a_cluster_hash_slot() -> None:
    app = RedisKeys("homemixer")
    together = [
        app.timeline_key(42),
        app.following_key(42),
        app.blocks_key(42),
        app.blocked_by_key(42),
        app.mutes_key(42),
        app.not_interested_key(42),
        app.served_key(42),
        app.served_by_key(42),
        app.feedback_key(42),
    ]
    assert len({key_slot(k.encode()) for k in together}) == 1
    assert key_slot(app.timeline_key(42).encode()) != key_slot(app.timeline_key(43).encode())
    calibration = [
        app.calibration,
        app.calibration_pending,
        app.calibration_served_key(1),
        app.calibration_served_key(2),
    ]
    assert len({key_slot(k.encode()) for k in calibration}) == 1


def test_a_shards_ready_keys_share_its_hash_slot() -> None:
    app = RedisKeys("homemixer")
    assert len({key_slot(k.encode()) for k in app.ready_keys(8, "5")}) == 1
    assert key_slot(b"5") == key_slot(app.ready_key(0, "5").encode())


def test_the_scan_pattern_escapes_glob_characters() -> None:
    assert app_pattern("homemixer") == "homemixer:*"
    assert app_pattern("a*b[1]?") == "a\\*b\\[1\\]\\?:*"
