"""The rows a dead-letter replay sends back (`ebackpack deadletters replay moodle.logstore`): read from
`moodle.logstore` by the poller at the start of each poll, from the group's committed offset up to the
end the topic had then, and taken like rows of Moodle's table. The offset is committed after each batch
was taken (published and dead-lettered, acknowledged): a failure in between takes the batch again."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

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


def _ms_left(deadline: float) -> int:
    return max(int((deadline - time.monotonic()) * 1000), 1)


class ReplayedRows:
    """A consumer of `moodle.logstore` under the gateway's group, opened on first use and kept."""

    def __init__(self, settings: Settings, timeout: float = BATCH_TIMEOUT) -> None:
        self.settings = settings
        self.topic = settings.topic(LOGSTORE_ROWS)
        self.timeout = timeout
        self._consumer: KafkaConsumer | None = None

    def batches(self, size: int) -> Iterator[list[ConsumerRecord]]:
        """The records not committed yet, up to the topic's end now, `size` at most per batch; commit
        each with `commit` once taken. Raises `BrokerUnavailable` when the broker does not answer."""
        try:
            yield from self._batches(self._open(), size)
        except KafkaError as exc:
            self.close()
            raise BrokerUnavailable(f"replayed rows not read from {self.topic}: {exc}") from exc

    def _batches(self, consumer: KafkaConsumer, size: int) -> Iterator[list[ConsumerRecord]]:
        tps = [TopicPartition(self.topic, p) for p in sorted(consumer.partitions_for_topic(self.topic) or ())]
        if not tps:
            return  # the topic was not created (`ebackpack` topics made before it existed): nothing to take
        ends = self._rewind(consumer, tps)
        deadline = time.monotonic() + self.timeout
        while any(consumer.position(tp, timeout_ms=_ms_left(deadline)) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"{self.topic} not read to its end in {self.timeout:g} s")
            polled = consumer.poll(timeout_ms=POLL_MS, max_records=size)
            records = [r for tp, batch in polled.items() for r in batch if r.offset < ends[tp]]
            if records:
                yield sorted(records, key=lambda r: (r.partition, r.offset))

    def _rewind(self, consumer: KafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Back to the committed offsets (a batch not committed is read again); the ends to read to."""
        ms = int(self.timeout * 1000)
        if set(consumer.assignment()) != set(tps):
            consumer.assign(tps)
        for tp in tps:
            committed = consumer.committed(tp, timeout_ms=ms)
            if committed is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
        return consumer.end_offsets(tps, timeout_ms=ms)

    def commit(self, records: list[ConsumerRecord]) -> None:
        ends: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            ends[tp] = max(ends.get(tp, 0), r.offset + 1)
        try:
            self._open().commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in ends.items()})
        except KafkaError as exc:
            self.close()
            raise BrokerUnavailable(f"replayed rows of {self.topic} taken, not committed: {exc}") from exc

    def _open(self) -> KafkaConsumer:
        if self._consumer is None:
            ms = max(int(self.timeout * 1000), 1000)
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap.split(","),
                group_id=consumer_name(self.settings),
                client_id="ebackpack-gateway",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                bootstrap_timeout_ms=ms,
                request_timeout_ms=max(ms, 15_000),
            )
        return self._consumer

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close(autocommit=False)
