"""Writing to sink topics: every output of a batch is sent, then waited for, before the batch's
state commits, so that a crash can repeat an output but never lose one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.types import TopicT

from streams.codec import encode_json


class SinkBatch:
    def __init__(self) -> None:
        self._pending: list[tuple[TopicT, bytes | None, bytes]] = []

    def add(self, topic: TopicT, key: str | None, value: Any) -> None:
        self._pending.append((topic, None if key is None else key.encode(), encode_json(value)))

    async def send_and_wait(self) -> None:
        if not self._pending:
            return
        futures = [await topic.send(key=key, value=value) for topic, key, value in self._pending]
        self._pending.clear()
        await asyncio.gather(*futures)
