import re
from pathlib import Path

from tests.kafka_broker import KAFKA_VERSION

COMPOSE = Path(__file__).parents[2] / "docker" / "compose.yaml"


def test_compose_runs_the_kafka_version_the_tests_run() -> None:
    assert set(re.findall(r"image: apache/kafka:(\S+)", COMPOSE.read_text())) == {KAFKA_VERSION}
