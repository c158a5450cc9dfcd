"""The gateway's Kafka side: publish Moodle event messages to `moodle.events`, keyed by learner."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kafka import KafkaProducer

from ebackpack.config import Settings
from ebackpack.streaming.topics import MOODLE_EVENTS


class MoodleEventPublisher:
    def __init__(self, settings: Settings):
        self.topic = settings.topic(MOODLE_EVENTS)
        self._producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap.split(","), acks="all",
                                       linger_ms=5, retries=5, max_in_flight_requests_per_connection=1)

    def publish(self, messages: Iterable[tuple[bytes | None, bytes]],
                progress: Callable[[int], None] | None = None) -> dict[int, int]:
        """Send every message and wait for the broker's acks.

        Returns the next offset per partition after the batch (what a consumer must reach to be done).
        """
        futures = [self._producer.send(self.topic, key=key, value=value) for key, value in messages]
        self._producer.flush()
        ends: dict[int, int] = {}
        for count, future in enumerate(futures, 1):
            meta = future.get(timeout=30)
            ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
            if progress:
                progress(count)
        return ends

    def close(self) -> None:
        self._producer.close(timeout=10)
