import pytest

from streams.dev.demo import Workload
from streams.ingest.codec import EventDecoder
from streams.ingest.parser import ParserLimits, SourceEvent, parse
from streams.snowflake import SnowflakeGenerator, snowflake_at, snowflake_ms


def test_snowflake_ids_increase_and_encode_their_time() -> None:
    gen = SnowflakeGenerator(worker=5)
    ids = [gen.next_id(1_700_000_000_000) for _ in range(5000)]
    assert ids == sorted(set(ids)), "strictly increasing, even past 4096 ids in one millisecond"
    assert snowflake_ms(ids[0]) == 1_700_000_000_000
    assert (ids[0] >> 12) & 0x3FF == 5
    assert gen.next_id(1_600_000_000_000) > ids[-1], "a clock stepping back never reuses ids"
    assert snowflake_at(1288834974657) == 0
    with pytest.raises(ValueError):
        SnowflakeGenerator(worker=1024)


def test_demo_workload_is_valid_for_the_parser_and_deterministic() -> None:
    now = 1_700_000_000_000
    limits = ParserLimits(max_event_bytes=65536, max_future_skew_ms=3_600_000)
    a, b = Workload(users=50, seed=3), Workload(users=50, seed=3)
    messages = list(a.follow_graph(now)) + [a.next_message(now + i) for i in range(2000)]
    assert messages[:10] == list(b.follow_graph(now))[:10]
    topics = {topic for topic, _, _ in messages}
    assert topics == {
        "social_graph_events",
        "content_events",
        "engagement_events",
        "user_activity_events",
        "real_time_signals",
    }
    import orjson

    for topic, key, event in messages:
        result = parse(
            topic,
            key.encode(),
            orjson.dumps(event),
            now_ms=now + 5000,
            limits=limits,
            decoder=EventDecoder(),
        )
        assert isinstance(result, SourceEvent), (topic, event, result)
    celebrity_followers = sum(
        1 for t, _, e in messages if t == "social_graph_events" and e["dst_user_id"] == 1
    )
    assert celebrity_followers > 25, "user 1 is a celebrity followed by most users"


def test_bootstrap_servers_from_fausts_broker_list() -> None:
    from streams.settings import Settings

    assert Settings(broker="kafka://a:1;kafka://b:2").bootstrap_servers == "a:1,b:2"
    assert Settings(broker="kafka://a:1").bootstrap_servers == "a:1"
