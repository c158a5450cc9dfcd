"""Read a whole topic back, for the demo's summary and the tests.

The embedded broker's end offsets are unreliable, so this reads until the topic is idle.
"""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from ebackpack.config import Settings


def read_topics(settings: Settings, topics: list[str], idle_ms: int = 1500) -> list[ConsumerRecord]:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        enable_auto_commit=False,
        consumer_timeout_ms=idle_ms,
    )
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or []]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        return list(consumer)
    finally:
        consumer.close()
