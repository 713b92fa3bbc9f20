"""How long a new consumer group's first member waits for its assignment, by session timeout.

    python -m bench.bench_group_join [--broker tansu|kafka]

What a downstream consumer of `real_time_features` meets when it subscribes with a group of its
own (the issue "state that lasts" saw such consumers read nothing for a long time after a
takeover on the embedded broker). A topic of 4 partitions with 100 records; for each setting, a
confluent-kafka consumer of a fresh group subscribes and polls until its first record. Then the
same while another group rebalances around a member killed with SIGKILL, to see whether one
group's pending rebalance holds up another's join.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.brokers import broker_kind, start_test_broker

TOPIC = "join-bench"
SETTINGS: list[dict[str, Any]] = [
    {},
    {"session.timeout.ms": 6000},
    {"session.timeout.ms": 10000},
    {"session.timeout.ms": 30000},
]
# A member of group "other" that joins, says so, and polls until it is killed.
MEMBER = """
import sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "other", "session.timeout.ms": 10000})
c.subscribe([sys.argv[2]])
while not c.assignment():
    c.poll(0.2)
print("assigned", flush=True)
while True:
    c.poll(0.2)
"""


def first_record_s(bootstrap: str, extra: dict[str, Any], timeout_s: float = 120.0) -> float | None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            **extra,
        }
    )
    consumer.subscribe([TOPIC])
    began = time.monotonic()
    try:
        while time.monotonic() - began < timeout_s:
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                return time.monotonic() - began
    finally:
        consumer.close()
    return None


def member(bootstrap: str, wait: bool) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", MEMBER, bootstrap, TOPIC], stdout=subprocess.PIPE, text=True
    )
    if wait:
        assert proc.stdout is not None
        proc.stdout.readline()
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--broker", choices=("tansu", "kafka"), default=None)
    kind = broker_kind(parser.parse_args().broker)
    with tempfile.TemporaryDirectory(prefix="bench-join-") as tmp:
        broker = start_test_broker(kind, Path(tmp))
        bootstrap = f"127.0.0.1:{broker.port}"
        try:
            admin = AdminClient({"bootstrap.servers": bootstrap})
            admin.create_topics([NewTopic(TOPIC, 4, 1)])[TOPIC].result()
            producer = Producer({"bootstrap.servers": bootstrap})
            for _ in range(100):
                producer.produce(TOPIC, b"x")
            producer.flush()
            print(f"bench_group_join: broker {kind}; a fresh group's first record after subscribe")
            for extra in SETTINGS:
                label = str(extra or "librdkafka's defaults (session.timeout.ms 45000)")
                print(f"  {label:48} {first_record_s(bootstrap, extra) or float('nan'):6.1f} s")
            dead = member(bootstrap, wait=True)
            dead.send_signal(signal.SIGKILL)
            dead.wait()
            rejoining = member(bootstrap, wait=False)  # "other" now waits out the dead member's session
            time.sleep(1)
            extra = {"session.timeout.ms": 10000}
            label = f"{extra} while another group rebalances"
            print(f"  {label:48} {first_record_s(bootstrap, extra) or float('nan'):6.1f} s")
            rejoining.kill()
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
