"""Records for the `system_events` sink: dead letters, health and notices, in the contract's shape."""

from __future__ import annotations

from typing import Any

# Enough of a bad message to see what it was, without turning the sink into a copy of the input.
RAW_PREVIEW_BYTES = 1024


def dead_letter(
    source_topic: str, partition: int, offset: int, reason: str, raw: bytes | None, now_ms: int
) -> dict[str, Any]:
    preview = (raw or b"")[:RAW_PREVIEW_BYTES].decode("utf-8", "backslashreplace")
    return {
        "type": "dead_letter",
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "reason": reason,
        "raw": preview,
        "ts": now_ms,
    }
