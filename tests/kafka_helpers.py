"""Read a whole topic back (the embedded broker's end offsets are unreliable: read until idle)."""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from ebackpack.config import Settings


def read_topic(settings: Settings, topic: str, idle_ms: int = 2000) -> list[ConsumerRecord]:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap.split(","), enable_auto_commit=False,
                             consumer_timeout_ms=idle_ms)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        return list(consumer)
    finally:
        consumer.close()
