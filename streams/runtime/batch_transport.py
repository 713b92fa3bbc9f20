"""Batch delivery for Faust: one Faust message per fetched run of records of one topic-partition.

Why. A Faust worker spends about 100 µs of framework work per Kafka message before an agent sees
it (FIELD_NOTES): the consumer's drain loop awaits each message through `wait_first` (four
futures), the conductor decodes it into an event and puts it on a channel queue, and the stream
runs its per-event steps (sensors, current-event context, processors, ack). Batching inside the
agent (`take_events`) changes none of that, so a Faust agent tops out near 10,000 messages/s
whatever it does with them. A homemixer node needs 50,000 events/s per process.

How. `BatchConsumer` replaces the consumer's drain loop. For a topic registered with
`batch_topic`, each run of fetched records of one topic-partition (up to `max_records`) becomes a
single `BatchMessage` whose value is a `RecordBatch` (the tp and the records, oldest first,
unchanged from the Kafka client). So the drain loop, the conductor, the channel queue and the
stream all run once per batch, and the agent does `async for batch in stream:`. Every other topic
(table changelogs, topics of ordinary agents) keeps Faust's per-message path unchanged, so one
worker can mix both.

Offsets. A batch message carries the offset of its last record, so Faust's own bookkeeping
(read offsets, message tracking, the stream's ack, `wait_empty` at a rebalance) works unchanged.
The consumer remembers, per partition, which offsets each delivered batch stands for: from just
after the partition's previous delivered offset (so offsets with no record, such as compacted ones
or transaction markers, are covered, as Faust's gap tracking covers them per message) up to its
last record. When Faust next computes the offset to commit (`_new_offset`), every batch acked by
then adds those offsets to the acked ones, and nothing at or past the first offset of a batch not
yet acked is committed. The committed offset therefore moves past a batch's last record once,
and only once, the agent has finished it and every batch before it, even if batches are acked
out of order (that hook is used rather than `ack`, which Faust's compiled stream iterator
inlines). A seek (after a rebalance) forgets the batches in flight: they come again.

Limits.
- A batch topic must be read only through channels that expect `RecordBatch` values (the topic
  `batch_topic` returns, or clones of it): the registry is per topic name, and every subscriber
  of that name gets batches. Sending to the topic is unaffected (raw bytes both ways).
- Delivery into the agent is all or nothing per batch, but a batch an agent crashes on is acked
  (Faust's stream acks in a `finally`) and not delivered again by that process: agents retry a
  failed batch instead (`topologies.topics.batch_agent`). After a process crash the batches since
  the committed offset come again, and nodes skip what their state has applied
  (`streams.runtime.batch`).
- Faust's per-message features then count batches: `take`/`take_events` group batches, the
  monitor's message counters and `broker_commit_every` count batches (commits still happen every
  `broker_commit_interval`), and `Event.key` is None.
- A flow suspension (rebalance) abandons an in-flight batch exactly as Faust abandons an in-flight
  message; after the rebalance Faust seeks to the committed offset and the batch comes again.
- Channel queues count batches: `batch_topic` sets a small `maxsize`, so at most about
  `maxsize * max_records` records wait in memory for a slow agent.
- Only the aiokafka driver is wrapped (the one `kafka://` selects); it is selected with the
  `hmkafka://` scheme, see `batch_broker_url`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, AppT, ConsumerMessage, Message, TopicT
from faust.types.transports import ConsumerT
from mode import Service, ServiceT

#: The broker URL scheme that selects this transport (`hmkafka://host:port`).
SCHEME = "hmkafka"
#: Records per batch message: enough to amortise the ~100 µs of Faust work per message to under
#: 0.1 µs per record, few enough that a batch is a few ms of agent work.
DEFAULT_MAX_RECORDS = 2000
#: Batch messages a channel holds before Faust pauses fetching for the partition.
DEFAULT_QUEUE_BATCHES = 8


class KafkaRecord(Protocol):
    """What a batch's records offer: aiokafka's `ConsumerRecord` is one, as delivered."""

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int:
        """Milliseconds since the epoch."""
        ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """Consecutive fetched records of one topic-partition, oldest first (never empty)."""

    tp: TP
    records: Sequence[KafkaRecord]

    @property
    def first_offset(self) -> int:
        return self.records[0].offset

    @property
    def last_offset(self) -> int:
        return self.records[-1].offset

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[KafkaRecord]:
        return iter(self.records)


class BatchMessage(ConsumerMessage):
    """A Faust message standing for the offsets `[first_offset, offset]` of its partition."""

    __slots__ = ("first_offset",)

    def __init__(self, batch: RecordBatch, first_offset: int, generation_id: int) -> None:
        last = batch.records[-1]
        tp = batch.tp
        super().__init__(
            tp.topic,
            tp.partition,
            last.offset,
            last.timestamp / 1000.0,
            0,
            [],
            None,
            cast(Any, batch),
            None,
            0,
            0,
            tp,
            generation_id=generation_id,
        )
        self.first_offset = first_offset


class BatchSchema(faust.Schema[Any, Any]):
    """Hands the batch to the stream as it is: no per-record decoding inside Faust."""

    def loads_key(self, app: AppT, message: Message, **_: Any) -> Any:
        return message.key

    def loads_value(self, app: AppT, message: Message, **_: Any) -> Any:
        return message.value


# Topic name -> records per batch, per app (a process may hold several apps, e.g. in tests).
_registry: weakref.WeakKeyDictionary[AppT, dict[str, int]] = weakref.WeakKeyDictionary()


def batch_topics(app: AppT) -> Mapping[str, int]:
    """The topics of `app` delivered in batches, with their batch size."""
    return _registry.get(app, {})


def batch_topic(
    app: AppT,
    *names: str,
    max_records: int = DEFAULT_MAX_RECORDS,
    maxsize: int = DEFAULT_QUEUE_BATCHES,
    partitions: int | None = None,
) -> TopicT:
    """A topic (of raw-bytes messages) whose agents receive `RecordBatch` values.

    Takes effect when the app's broker URL uses `SCHEME`; under plain `kafka://` the same agent
    would get single messages, so a worker must not mix the two.
    """
    if max_records < 1:
        raise ValueError("max_records must be at least 1")
    registered = _registry.setdefault(app, {})
    for name in names:
        registered[name] = max_records
    schema = BatchSchema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    topic: TopicT = app.topic(*names, schema=schema, maxsize=maxsize, partitions=partitions)
    return topic


def batch_broker_url(url: str) -> str:
    """`kafka://h1:9092;h2:9092` -> `hmkafka://h1:9092;h2:9092` (the same brokers, this transport)."""
    parts = []
    for part in url.split(";"):
        scheme, sep, rest = part.partition("://")
        parts.append(f"{SCHEME}://{rest}" if sep and scheme in ("kafka", "aiokafka", SCHEME) else part)
    return ";".join(parts)


Delivery = tuple[TP, Message | list[KafkaRecord]]


def _round_robin(iterators: list[Iterator[Delivery]]) -> Iterator[Delivery]:
    """One item of each partition in turn, so no partition waits behind another's backlog."""
    while iterators:
        alive = []
        for it in iterators:
            item = next(it, None)
            if item is not None:
                alive.append(it)
                yield item
        iterators = alive


class BatchConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer, delivering registered topics one batch per message."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per partition, batches delivered and not yet folded into the acked offsets:
        # last offset -> first offset the batch stands for.
        self._batch_spans: defaultdict[TP, dict[int, int]] = defaultdict(dict)

    def _new_offset(self, tp: TP) -> int | None:
        # Acks are recorded per message offset, and for a batch that is its last record's: the
        # stream's ack path is compiled (faust/_cython/streams.pyx inlines `Consumer.ack`), so it
        # cannot be extended. Here, before Faust looks for the run of acked offsets to commit, each
        # acked batch adds the offsets it stands for, and offsets from the first one of a batch
        # still unacked are held back: Faust would otherwise commit a run of acked offsets
        # starting above an unacked batch when it knows no committed offset yet.
        spans = self._batch_spans.get(tp)
        if not spans:
            return self._faust_new_offset(tp)
        index: set[int] = self._acked_index[tp]
        acked: list[int] = self._acked[tp]
        committed: int | None = self._committed_offset[tp]
        added: set[int] = set()
        unacked_from: int | None = None
        for last, first in list(spans.items()):
            if committed is not None and last < committed:
                del spans[last]  # committed already (delivered again after a seek back)
            elif last in index:
                del spans[last]
                added.update(range(first if committed is None else max(first, committed), last))
            elif unacked_from is None or first < unacked_from:
                unacked_from = first
        added.difference_update(index)
        if added:
            index.update(added)
            acked.extend(added)
        if unacked_from is None or not acked or max(acked) < unacked_from:
            return self._faust_new_offset(tp)
        held = [offset for offset in acked if offset >= unacked_from]
        acked[:] = [offset for offset in acked if offset < unacked_from]
        try:
            return self._faust_new_offset(tp)
        finally:
            acked.extend(held)

    def _faust_new_offset(self, tp: TP) -> int | None:
        offset: int | None = super()._new_offset(tp)
        return offset

    async def perform_seek(self) -> None:
        # Everything from the committed offsets on comes again, as new batches.
        self._batch_spans.clear()
        await super().perform_seek()

    async def seek(self, partition: TP, offset: int) -> None:
        self._batch_spans.pop(partition, None)
        await super().seek(partition, offset)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._batch_spans.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    def _items(self, tp: TP, records: list[Any], max_records: int | None) -> Iterator[Delivery]:
        if max_records is None:
            to_message = self._to_message
            for record in records:
                yield tp, to_message(tp, record)
        else:
            for start in range(0, len(records), max_records):
                yield tp, records[start : start + max_records]

    async def _deliveries(self, timeout: float) -> AsyncIterator[Delivery]:
        """Like `Consumer.getmany`, but a registered topic's records come in chunks."""
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            self.log.dev("getmany called while flow not active. Seek back to committed offsets.")
            try:
                await self.perform_seek()
            except Exception as exc:
                self.log.warning(f"exception performing seek when flow not active {exc}")
            return
        sizes = batch_topics(self.app)
        buffered = self._buffered_partitions
        track_end_offset = self.app.monitor.track_tp_end_offset
        iterators = []
        for tp, tp_records in records.items():
            if not tp_records:
                continue
            if active_partitions is None or tp in active_partitions or tp in buffered:
                track_end_offset(tp, self.highwater(tp))
                iterators.append(self._items(tp, tp_records, sizes.get(tp.topic)))
        for item in _round_robin(iterators):
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                break
            yield item

    def _batch_message(self, tp: TP, records: list[KafkaRecord]) -> BatchMessage | None:
        """The message for a chunk of fetched records, or None if all were delivered before."""
        r_offset: int | None = self._read_offset[tp]
        if r_offset is not None and records[0].offset < r_offset:
            # Already delivered (Faust drops such messages one by one).
            records = [r for r in records if r.offset >= r_offset]
            if not records:
                return None
        first = records[0].offset
        # Offsets between the previous delivery and this batch hold no record: this batch's ack
        # covers them (what Faust's `_add_gap` does per message). After a seek the read offset is
        # the next offset to read, not the last one read, and `first` is that offset.
        covers_from = first
        if r_offset is not None and r_offset + 1 < first:
            covers_from = r_offset + 1
        message = BatchMessage(RecordBatch(tp, records), covers_from, self.app.consumer_generation_id)
        if self.app.topics.acks_enabled_for(tp.topic):
            self._batch_spans[tp][message.offset] = covers_from
        return message

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover - needs a broker
        # Faust's loop (faust/transport/consumer.py), with a batch branch; the per-message branch
        # is Faust's, unchanged.
        callback = self.callback
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        read_offset: MutableMapping[TP, int | None] = self._read_offset
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        suspend_flow = self.suspend_flow

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                deliveries = self._deliveries(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, item in deliveries:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0
                        if isinstance(item, list):
                            batch_message = self._batch_message(tp, item)
                            if batch_message is None:
                                continue
                            message: Message = batch_message
                        else:
                            message = item
                            r_offset = read_offset[tp]
                            if r_offset is not None and message.offset < r_offset:
                                self.log.dev("DROPPED MESSAGE ROFF %r", message.offset)
                                continue
                            gap = message.offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, message.offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        await self.wait_first(callback(message), suspend_flow.wait())
                        read_offset[tp] = message.offset
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)


class BatchTransport(aiokafka_driver.Transport):
    """Faust's aiokafka transport with `BatchConsumer`; selected by `hmkafka://` broker URLs."""

    Consumer: ClassVar[type[ConsumerT]] = BatchConsumer


# Faust resolves a broker URL's scheme through this registry when the app first needs its
# transport; importing this module (as `streams.app` does) is enough.
TRANSPORTS.aliases[SCHEME] = f"{__name__}:BatchTransport"
