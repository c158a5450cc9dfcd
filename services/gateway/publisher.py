"""The gateway's Kafka side: every producer the gateway builds, with every wait bounded, and the batch
publisher of the log-store poller (`moodle.events`, the live lane) and of the backfill and import
(`moodle.events.backfill`, the issuer's second lane, taken only while the live one has nothing waiting),
both keyed by learner.

kafka-python's defaults let one message wait minutes while the broker is down (30 s for the first
connection, 60 s for metadata or buffer space, 30 s per request, 120 s per delivery). Every producer here
is built by `bounded_producer`, which bounds all four by one figure, and is created lazily by a
`ProducerSlot`, so that a gateway started while the broker is down starts at once and answers "broker
unavailable" instead of hanging in its constructor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.producer.future import FutureRecordMetadata, RecordMetadata

from ebackpack.adapters.kafka import bounded_producer
from ebackpack.config import Settings
from ebackpack.streaming.topics import MOODLE_EVENTS, MOODLE_EVENTS_BACKFILL

BATCH_TIMEOUT = 30.0  # seconds: the poller's, backfill's and import's bound per chunk of messages
CHUNK = 1000  # messages handed over and acknowledged under one deadline


class BrokerUnavailable(RuntimeError):  # noqa: N818 - names the condition, as the 503 text does
    """The broker did not acknowledge in time, or could not be reached."""


class ProducerSlot:
    """One lazily built bounded producer, shared by threads (kafka-python's producer is thread-safe).

    `get` connects on first use within the caller's deadline; after a failure `reset` drops the producer
    (one can be left in a state it does not leave) and the next call builds a fresh one.
    """

    def __init__(self, settings: Settings, client_id: str, timeout: float) -> None:
        self.settings, self.client_id, self.timeout = settings, client_id, timeout
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def get(self, deadline: float) -> KafkaProducer:
        """The producer; `KafkaError` (or `KafkaTimeoutError`) when it cannot connect by `deadline`
        (`time.monotonic()`)."""
        if not self._lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            raise KafkaTimeoutError("another request is still connecting to the broker")
        try:
            if self._producer is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise KafkaTimeoutError("no time left to connect to the broker")
                # Only the first connection is cut to the caller's deadline: the producer outlives it.
                self._producer = bounded_producer(
                    self.settings,
                    client_id=self.client_id,
                    timeout=self.timeout,
                    connect_timeout=min(self.timeout, left),
                )
            return self._producer
        finally:
            self._lock.release()

    def reset(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:  # closing waits on the I/O thread: not on the caller's time
            threading.Thread(target=producer.close, kwargs={"timeout": 0}, daemon=True).start()

    def close(self, timeout: float | None = None) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=self.timeout if timeout is None else timeout)


Record = tuple[str, bytes | None, bytes | None]  # (topic, key, value); a None value is a tombstone


def send_all(slot: ProducerSlot, records: Sequence[Record], deadline: float) -> list[FutureRecordMetadata]:
    """Hands every record to the producer (which may block on metadata or a full buffer) by `deadline`."""
    producer = slot.get(deadline)
    futures: list[FutureRecordMetadata] = []
    for topic, key, value in records:
        if time.monotonic() > deadline:
            raise KafkaTimeoutError(f"handed {len(futures)} of {len(records)} messages over in time")
        futures.append(producer.send(topic, key=key, value=value))
    return futures


def publish_acked(
    slot: ProducerSlot,
    records: Sequence[Record],
    deadline: float,
    progress: Callable[[int], None] | None = None,
) -> list[RecordMetadata]:
    """Sends `records` and waits for every acknowledgement (acks=all) until `deadline`
    (`time.monotonic()`), else raises `BrokerUnavailable` saying how far it got."""
    acked: list[RecordMetadata] = []
    try:
        futures = send_all(slot, records, deadline)
        for count, future in enumerate(futures, 1):
            acked.append(future.get(timeout=max(deadline - time.monotonic(), 0.001)))
            if progress:
                progress(count)
    except KafkaError as exc:  # KafkaTimeoutError included
        slot.reset()
        raise BrokerUnavailable(
            f"the broker acknowledged {len(acked)} of {len(records)} messages "
            f"in time ({type(exc).__name__}: {exc})"
        ) from exc
    return acked


def _shifted(progress: Callable[[int], None], base: int, count: int) -> None:
    progress(base + count)


class MoodleEventPublisher:
    """The poller's publisher: a batch of `moodle.events` messages, acked. `backfill=True`: the
    backfill's and import's, on `moodle.events.backfill`, so that history never queues live events."""

    def __init__(self, settings: Settings, timeout: float = BATCH_TIMEOUT, *, backfill: bool = False) -> None:
        self.topic = settings.topic(MOODLE_EVENTS_BACKFILL if backfill else MOODLE_EVENTS)
        self.timeout = timeout
        self._slot = ProducerSlot(settings, "ebackpack-gateway", timeout)

    def publish(
        self, messages: Iterable[tuple[bytes | None, bytes]], progress: Callable[[int], None] | None = None
    ) -> dict[int, int]:
        """Send every message and wait for the broker's acks, `CHUNK` messages at a time, each chunk
        within `timeout` seconds (so a large batch is bounded but not cut short while the broker is up).

        Returns the next offset per partition after the batch (what a consumer must reach to be done).
        """
        records = [(self.topic, key, value) for key, value in messages]
        ends: dict[int, int] = {}
        done = 0
        for start in range(0, len(records), CHUNK):  # a fresh deadline per chunk: bounded, never cut short
            chunk = records[start : start + CHUNK]
            acked = publish_acked(
                self._slot,
                chunk,
                time.monotonic() + self.timeout,
                None if progress is None else partial(_shifted, progress, done),
            )
            done += len(chunk)
            for meta in acked:
                ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
        return ends

    def close(self) -> None:
        self._slot.close(timeout=10)
