"""The rows a dead-letter replay sends back (`ebackpack deadletters replay moodle.logstore`): read from
`moodle.logstore` by the poller at the start of each poll (and by an import), from the group's committed
offset to the end, and taken like rows of Moodle's table. The offset is committed after each batch was
taken (published and dead-lettered, acknowledged): a failure in between takes the batch again.

The end is the high watermark of a fetch, not the broker's reported end offset (which Tansu gets wrong,
see `ebackpack/adapters/broker.py`), read by a consumer of its own each time (a reused one can hold the
high watermark of a fetch sent before the last records came)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata

from ebackpack.config import Settings
from ebackpack.streaming.topics import LOGSTORE_ROWS
from services.gateway.logstore.dead_letters import consumer_name
from services.gateway.logstore.intake import Incoming, Origin
from services.gateway.publisher import BATCH_TIMEOUT, BrokerUnavailable

POLL_MS = 200
FETCH_WAIT_MS = 100  # a fetch at the end answers (empty, with the high watermark) after this


def incoming(record: ConsumerRecord) -> Incoming:
    """A replayed record as a row to take: its value is the JSON object its dead letter kept."""
    where = (record.topic, record.partition, record.offset)
    try:
        row = json.loads(record.value or b"")
    except ValueError as exc:
        return Incoming(Origin(replayed=where), None, f"not JSON: {exc}", record.value)
    if not isinstance(row, dict):
        problem = f"not a row object but {type(row).__name__}"
        return Incoming(Origin(replayed=where), None, problem, record.value)
    return Incoming(Origin(id=row.get("id"), replayed=where), row)


class Drain:
    """One reading of `moodle.logstore`, from the committed offsets to the high watermark."""

    def __init__(self, consumer: KafkaConsumer, topic: str, timeout: float) -> None:
        self.consumer, self.topic, self.timeout = consumer, topic, timeout

    def batches(self, size: int) -> Iterator[list[ConsumerRecord]]:
        """The records not committed yet, `size` at most per batch; `commit` each once taken."""
        tps = [TopicPartition(self.topic, p) for p in sorted(self.consumer.partitions_for_topic(self.topic))]
        if not tps:
            return  # the topic was not created (topics made before it existed): nothing to take
        self._rewind(tps)
        deadline = time.monotonic() + self.timeout
        while not all(self._caught_up(tp) for tp in tps):
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"{self.topic} not read to its end in {self.timeout:g} s")
            polled = self.consumer.poll(timeout_ms=POLL_MS, max_records=size)
            records = [r for batch in polled.values() for r in batch]
            if records:
                yield sorted(records, key=lambda r: (r.partition, r.offset))

    def _rewind(self, tps: list[TopicPartition]) -> None:
        self.consumer.assign(tps)
        for tp in tps:
            committed = self.consumer.committed(tp, timeout_ms=int(self.timeout * 1000))
            if committed is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, committed)

    def _caught_up(self, tp: TopicPartition) -> bool:
        highwater = self.consumer.highwater(tp)
        return highwater is not None and self.consumer.position(tp) >= highwater

    def commit(self, records: list[ConsumerRecord]) -> None:
        ends: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            ends[tp] = max(ends.get(tp, 0), r.offset + 1)
        self.consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in ends.items()})


class ReplayedRows:
    """Reads `moodle.logstore` under the gateway's consumer group."""

    def __init__(self, settings: Settings, timeout: float = BATCH_TIMEOUT) -> None:
        self.settings = settings
        self.topic = settings.topic(LOGSTORE_ROWS)
        self.timeout = timeout

    @contextmanager
    def drain(self) -> Iterator[Drain]:
        """A consumer for one reading; `BrokerUnavailable` when the broker does not answer."""
        consumer: KafkaConsumer | None = None
        try:
            consumer = self._consumer()
            yield Drain(consumer, self.topic, self.timeout)
        except KafkaError as exc:
            raise BrokerUnavailable(f"replayed rows of {self.topic} not read or committed: {exc}") from exc
        finally:
            if consumer is not None:
                consumer.close(autocommit=False)

    def _consumer(self) -> KafkaConsumer:
        ms = max(int(self.timeout * 1000), 1000)
        return KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap.split(","),
            group_id=consumer_name(self.settings),
            client_id="ebackpack-gateway",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_WAIT_MS,
            bootstrap_timeout_ms=ms,
            request_timeout_ms=max(ms, 15_000),
        )
