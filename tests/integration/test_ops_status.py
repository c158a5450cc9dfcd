"""The operator's view on the embedded stack: a real issuer worker with metrics on, a few completions and
one malformed message; then `status()`, the worker's /metrics, and the dead-letter tool (list, inspect,
replay) including its bookkeeping (a dead letter is replayed once)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import UnsupportedVersionError
from kafka.structs import OffsetAndMetadata
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from ebackpack.adapters.broker import Broker
from ebackpack.bootstrap import prepare
from ebackpack.cli import render
from ebackpack.config import Settings
from ebackpack.dev.sample_data import default_dataset
from ebackpack.dev.stack import free_port
from ebackpack.dev.workers import Worker
from ebackpack.ops import deadletters, status
from ebackpack.streaming.offset_guard import Marks, find_lost
from ebackpack.streaming.topics import CREDENTIALS, MOODLE_EVENTS, RENDER_REQUESTS, create_topics, dlq
from services.gateway.profiles import store_profiles
from services.gateway.publisher import MoodleEventPublisher
from tests.builders import completion, wait_for

pytestmark = pytest.mark.integration
WHEN = datetime(2026, 3, 1, tzinfo=UTC)
POISON = b'{"not": "a moodle event"'
DLQ = dlq(MOODLE_EVENTS)
INVALID = "InvalidMessage"


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def test_status_metrics_and_dead_letter_replay_on_a_running_issuer(settings: Settings) -> None:
    port = free_port()
    settings = settings.model_copy(update={"metrics_port": port})
    sessions = prepare(settings)
    store_profiles(sessions, default_dataset().profiles)
    events, dead = settings.topic(MOODLE_EVENTS), settings.topic(DLQ)
    worker = Worker("issuer", settings)
    worker.start()
    try:
        publisher = MoodleEventPublisher(settings)
        # One learner's events and the poison share a partition, so they go out as one record batch.
        ends = publisher.publish(
            [
                (b"5722", completion(5722, 42, WHEN)),
                (b"5722", completion(5722, 43, WHEN)),
                (b"5723", completion(5723, 42, WHEN)),
                (b"5722", POISON),
            ]
        )
        publisher.close()

        def settled() -> status.Status | None:
            state = status.status(settings)
            issuer = state.group("issuer")
            done = issuer.lag_of(MOODLE_EVENTS) == 0 and state.dead_letter_count(DLQ).total == 1
            return state if done else None

        state = wait_for(settled, 90, "the issuer to commit every event and dead-letter the poison", [worker])
        topic = state.topic(MOODLE_EVENTS)
        assert topic.topic == events and len(topic.partitions) == 4
        assert {p.partition: p.end for p in topic.partitions if p.end} == ends  # exact, batches or not
        assert topic.messages == 4 and topic.last_minute == 4
        issuer = state.group("issuer")
        assert issuer.group == settings.topic(settings.issuer_group) and issuer.started
        lag = next(t for t in issuer.topics if t.name == MOODLE_EVENTS)
        assert {p.partition: p.committed for p in lag.partitions if p.committed} == ends
        counts = state.dead_letter_count(DLQ)
        assert (counts.topic, counts.total, counts.not_replayed) == (dead, 1, 1)
        assert state.group("dead-letter replay").lag_of(DLQ) == 1
        assert state.topic(CREDENTIALS).end >= 2
        console = Console(record=True, width=200)
        console.print(render.render_status(state))
        text = console.export_text()
        assert events in text and dead in text and "Consumer groups" in text

        # The worker's own metrics: messages in, dead letters by error type, sends, its group's lag.
        def lag_reported() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
            scraped = scrape(port)
            group = settings.topic(settings.issuer_group)
            lags = {
                labels: v
                for (name, labels), v in scraped.items()
                if name == "ebackpack_consumer_lag"
                and ("topic", events) in labels
                and ("group", group) in labels
            }
            return scraped if len(lags) == 4 and not any(lags.values()) else None

        scraped = wait_for(lag_reported, 45, "the worker to report its group's lag as 0", [worker])
        assert sample(scraped, "ebackpack_messages_in_total", topic=events, consumer="issuer") == 4
        assert sample(scraped, "ebackpack_dead_letters_total", consumer="issuer", reason=INVALID) == 1
        assert sample(scraped, "ebackpack_messages_out_total", topic=dead) == 1
        assert sample(scraped, "ebackpack_messages_out_total", topic=settings.topic(CREDENTIALS)) >= 2
        assert sample(scraped, "ebackpack_processing_seconds_count", consumer="issuer") == 4

        # The dead-letter tool.
        [letter] = deadletters.dead_letters(settings)
        assert (letter.dlq_topic, letter.consumer, letter.error_type) == (dead, "issuer", "InvalidMessage")
        assert letter.reason.startswith("invalid MoodleEventMessage")
        assert (letter.source_topic, letter.key, letter.replayed) == (events, "5722", False)
        assert letter.source_offset == ends[letter.source_partition] - 1
        seen = deadletters.inspect(settings, DLQ, letter.offset)
        assert seen.value == POISON and seen.key == b"5722" and seen.decoded == POISON.decode()
        assert seen.dead_letter.reason == letter.reason
        console = Console(record=True, width=200)
        console.print(render.render_dead_letters([letter]))
        console.print(render.render_inspection(seen))
        text = console.export_text()
        assert "InvalidMessage" in text and POISON.decode() in text and f"{events}/" in text

        assert deadletters.replay(settings, DLQ, dry_run=True) == 1
        assert deadletters.replay(settings, MOODLE_EVENTS) == 1  # the source topic's name finds its DLQ too

        # Still malformed: the issuer dead-letters the replayed copy again.
        def back_again() -> list[deadletters.DeadLetterView] | None:
            letters = deadletters.dead_letters(settings, DLQ)
            return letters if len(letters) == 2 else None

        first, second = wait_for(back_again, 60, "the replayed poison to be dead-lettered again", [worker])
        assert first.replayed and not second.replayed
        assert second.source_topic == events and second.key == "5722"
        assert second.source_offset == ends[second.source_partition]  # appended after the originals
        assert deadletters.replay(settings, DLQ, [first.offset]) == 0  # replayed once, never twice
        assert deadletters.replay(settings, DLQ, dry_run=True) == 1  # only the new dead letter is pending
        state = wait_for(
            lambda: (s := status.status(settings)).group("issuer").lag_of(MOODLE_EVENTS) == 0 and s,
            60,
            "the issuer to commit the replayed message",
            [worker],
        )
        counts = state.dead_letter_count(DLQ)
        assert (counts.total, counts.not_replayed) == (2, 1)
        assert state.topic(MOODLE_EVENTS).messages == 5
        scraped = scrape(port)
        assert sample(scraped, "ebackpack_messages_in_total", topic=events, consumer="issuer") == 5
        assert sample(scraped, "ebackpack_dead_letters_total", consumer="issuer", reason=INVALID) == 2
    finally:
        worker.stop()


class RefusingBroker:
    """A broker without offsets_for_times (ListOffsets v0): the status samples end offsets instead."""

    def __init__(self) -> None:
        self.calls = 0

    def partitions(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, 0)] if topic.endswith(MOODLE_EVENTS) else []

    def offsets(
        self,
        tps: list[TopicPartition],
        exact: bool = True,
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        self.calls += 1
        return {tp: 0 for tp in tps}, {tp: 10 * self.calls for tp in tps}

    def offsets_since(self, tps: list[TopicPartition], since_ms: int) -> dict[TopicPartition, int | None]:
        raise UnsupportedVersionError("ListOffsets v1")

    def committed(self, group: str) -> dict[TopicPartition, int]:
        return {}

    def groups(self) -> list[str]:
        return []


def test_without_offsets_for_times_the_rate_comes_from_two_samples() -> None:
    settings = Settings()
    state = status._status(RefusingBroker(), settings, True, 0.01)  # type: ignore[arg-type]
    assert state.rate_method.startswith("two end-offset samples")
    assert state.topic(MOODLE_EVENTS).last_minute == 10 * 60 / 0.01
    assert any("offsets_for_times" in note for note in state.notes)
    assert any("not created yet" in note for note in state.notes)
    assert state.group("issuer").lag_of(MOODLE_EVENTS) == 10


def test_the_replay_position_moves_over_the_run_of_replayed_offsets_only() -> None:
    tp = TopicPartition("moodle.events.dlq", 0)

    def records(*offsets: int) -> list[ConsumerRecord]:
        return [
            ConsumerRecord(tp.topic, tp.partition, -1, o, 0, 0, None, b"", [], None, 0, 1, -1)
            for o in offsets
        ]

    assert deadletters._advance({tp: 2}, records(2, 3, 5), everything=False) == {tp: 4}  # 5 is beyond a gap
    assert deadletters._advance({tp: 2}, records(5), everything=False) == {tp: 2}
    assert deadletters._advance({tp: 2}, records(2, 3, 5), everything=True) == {tp: 6}  # 4 is gone
    assert deadletters._advance({tp: 2}, [], everything=True) == {tp: 2}


def test_a_group_committed_beyond_the_log_end_is_shown_not_hidden_as_lag_0(settings: Settings) -> None:
    """The broker lost messages a group had read: `status` says so instead of a lag of 0, and the end
    offsets are the broker's high watermarks (the embedded broker's ListOffsets says 1 on s3://)."""
    create_topics(settings)
    topic, group = settings.topic(RENDER_REQUESTS), settings.topic("renderer")
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap.split(","))
    for i in range(5):
        producer.send(topic, key=b"k", value=b"%d" % i, partition=0).get(timeout=30)  # one batch each
    producer.close()
    committer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap.split(","), group_id=group, enable_auto_commit=False
    )
    committer.assign([TopicPartition(topic, 0)])
    committer.commit({TopicPartition(topic, 0): OffsetAndMetadata(50, "", -1)})
    committer.close(autocommit=False)

    with Broker(settings) as broker:
        assert broker.offsets([TopicPartition(topic, 0)])[1] == {TopicPartition(topic, 0): 5}
        [lost] = find_lost(broker, group, {TopicPartition(topic, 0)}, Marks.of(settings.data_dir, group))
        assert (lost.topic, lost.partition, lost.committed, lost.start, lost.end) == (topic, 0, 50, 0, 5)
    state = status.status(settings, sample_seconds=0)
    renderer = state.group("renderer")
    assert [(t, p.partition, p.committed, p.end) for t, p in renderer.beyond_end] == [(topic, 0, 50, 5)]
    console = Console(record=True, width=250)
    console.print(render.render_status(state))
    shown = console.export_text()
    assert "beyond end: 0:50>5" in shown
    assert f"Broker lost data: {group} (renderer) committed offset 50 on {topic}/0" in shown
