"""The workers' check for a broker that lost data (streaming/offset_guard.py `find_lost`), on the real
broker: quiet on a healthy log while its marks follow the group, a committed offset beyond the log end,
and a record at a marked offset that is not the one marked there."""

from __future__ import annotations

import json

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata

from ebackpack.adapters.broker import Broker
from ebackpack.config import Settings
from ebackpack.streaming.offset_guard import Marks, find_lost

pytestmark = pytest.mark.integration


def commit(settings: Settings, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap.split(","), group_id=group, enable_auto_commit=False
    )
    consumer.assign(list(offsets))
    consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()})
    consumer.close(autocommit=False)


def send(settings: Settings, tp: TopicPartition, count: int) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap.split(","))
    for i in range(count):
        producer.send(tp.topic, value=b"message %d" % i, partition=tp.partition).get(timeout=30)
    producer.close()


def test_marks_follow_a_healthy_log_and_give_a_replaced_one_away(settings: Settings) -> None:
    topic, group = settings.topic("guarded"), settings.topic("guard-group")
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap.split(","))
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    handled, idle = TopicPartition(topic, 0), TopicPartition(topic, 1)
    marks = Marks.of(settings.data_dir, group)
    send(settings, handled, 3)
    commit(settings, group, {handled: 2})
    with Broker(settings) as broker:
        assert find_lost(broker, group, {handled, idle}, marks) == []
        anchor, last = marks.get(handled)
        assert anchor is not None and anchor[0] == 0 and last is not None and last[0] == 1
        assert marks.get(idle) == (None, None)  # nothing there to mark yet

        send(settings, handled, 2)
        commit(settings, group, {handled: 5})
        assert find_lost(broker, group, {handled, idle}, marks) == []
        assert marks.get(handled)[0] == anchor and marks.get(handled)[1][0] == 4  # type: ignore[index]

        # the record marked last is not the one at its offset any more: the log was written anew
        path = marks.folder / f"{topic}.0.json"
        state = json.loads(path.read_text())
        state["last"][1] = "1:" + "0" * 32
        path.write_text(json.dumps(state))
        [lost] = find_lost(broker, group, {handled, idle}, marks)
        assert (lost.partition, lost.committed, lost.start, lost.end) == (0, 5, 0, 5)
        assert lost.reason == "the record at offset 4 is not the one that was there before"

        # the group read further than the log goes
        commit(settings, group, {handled: 9})
        [lost] = find_lost(broker, group, {handled, idle}, marks)
        assert lost.reason == "committed offset 9 is beyond the log end 5"
