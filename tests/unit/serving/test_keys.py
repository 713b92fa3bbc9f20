"""The Redis layout is a stored format: these are the keys, members and fields Redis already holds."""

from streams.serving import keys


def test_keys_members_and_fields_are_what_redis_already_holds() -> None:
    assert keys.timeline_key(7) == "hm:tl:7"
    assert keys.served_by_key(7) == "hm:servedby:7"
    assert keys.calibration_served_key(7) == "hm:cal:7"
    assert keys.features_key("user_author", "1:2") == "hm:f:user_author:1:2"
    assert keys.served_tag("adaptive", "conversation-heavy") == "adaptive/conversation-heavy"
    assert keys.pending_member(7, 101) == "7:101"
    assert keys.outcome_field(101, "profile_click") == "101:profile_click"


def test_each_parser_inverts_its_builder() -> None:
    tag = keys.served_tag("control", "twitter")
    assert keys.parse_served_tag(tag) == keys.parse_served_tag(tag.encode()) == ("control", "twitter")
    member = keys.pending_member(12, 2**63)
    assert keys.parse_pending_member(member) == keys.parse_pending_member(member.encode()) == (12, 2**63)
