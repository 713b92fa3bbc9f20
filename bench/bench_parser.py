"""Parser cost per event: the compiled validator against fastavro's generic validation, side by side.

python -m bench.bench_parser [N]
"""

from __future__ import annotations

import sys
import time

import fastavro
import orjson
from fastavro.validation import validate

from streams.ingest.codec import EventDecoder
from streams.ingest.parser import ParserLimits, parse
from streams.ingest.schemas import topic_schema
from tests.fuzz import NOW_MS, valid_event


def main(n: int) -> None:
    messages = [valid_event("engagement_events", i, NOW_MS) for i in range(n)]
    raws = [(key, orjson.dumps(event)) for key, event in messages]
    limits = ParserLimits(max_event_bytes=65536, max_future_skew_ms=3_600_000)
    decoder = EventDecoder()

    start = time.perf_counter()
    for key, raw in raws:
        parse("engagement_events", key, raw, now_ms=NOW_MS, limits=limits, decoder=decoder)
    ours = time.perf_counter() - start

    schema = fastavro.parse_schema(topic_schema("engagement_events").avro)
    start = time.perf_counter()
    for _, raw in raws:
        validate(orjson.loads(raw), schema, raise_errors=True)
    baseline = time.perf_counter() - start

    print(f"events: {n}")
    print(
        f"homemixer parse (decode + validate + rules): {n / ours:,.0f} events/s "
        f"({ours / n * 1e6:.2f} us/event)"
    )
    print(
        f"baseline orjson + fastavro.validate:         {n / baseline:,.0f} events/s "
        f"({baseline / n * 1e6:.2f} us/event)"
    )
    print(f"ratio: {baseline / ours:.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
