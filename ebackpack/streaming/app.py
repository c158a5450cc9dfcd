"""Faust app factory, and the faust side of the consume loops every agent uses: faust events in, the steps of
steps.py, acks after the work."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Any

import faust
from faust.sensors import Sensor
from faust.types import TopicT
from faust.types.transports import ProducerT
from faust.types.tuples import RecordMetadata

from ebackpack.adapters import metrics
from ebackpack.adapters.files import private_dir
from ebackpack.config import Settings

from . import health
from .policy import RetryPolicy, SourceMessage
from .steps import BatchHandler, Handler, Letter, Retrying, batch_pipeline, message_pipeline, run
from .steps import BatchOutcome as BatchOutcome  # what the agents' batch handlers return

log = logging.getLogger(__name__)
# A consumer paused on an outage (policy.py) does not poll for as long as the outage lasts; its
# heartbeats go on in the background. The broker must not count it as stuck and rebalance it away
# (that would only hand the same paused work to another member), nor faust log it as a timeout.
PAUSE_TOLERATED = 7 * 24 * 3600.0


class QuietWorker(faust.Worker):
    """faust's worker without its terminal progress spinner. For the spinner faust sets the root logger
    to DEBUG, so every debug message of aiokafka and faust (several per request) became a log record
    that the handlers then dropped: about a twentieth of a busy worker's CPU. Our workers write to log
    files, where the spinner never showed."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
        super().on_setup_root_logger(logger, level)


MAX_POLL_RECORDS = 500  # well under the 20 % of LANE_BUFFER above the pressure mark (lanes.py)


def make_app(name: str, settings: Settings) -> faust.App:
    datadir = (settings.data_dir / "faust" / name).resolve()
    private_dir(datadir.parent)  # faust creates only the last level; the data dir is private (0700)
    app = faust.App(
        settings.topic(name),
        broker=settings.kafka_url,
        store="memory://",
        web_enabled=False,
        web_host="127.0.0.1",
        datadir=str(datadir),
        topic_partitions=1,
        # The embedded broker's group join waits half the session timeout (see DESIGN.md).
        broker_session_timeout=settings.broker_session_timeout,
        broker_heartbeat_interval=settings.broker_heartbeat_interval,
        broker_rebalance_timeout=settings.broker_rebalance_timeout,
        broker_commit_interval=settings.commit_interval,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_max_poll_interval=PAUSE_TOLERATED,
        # Records handed over per poll. faust stops fetching a partition whose agent's buffer is under
        # pressure (80 % of stream_buffer_maxsize), but still hands over what the poll returned; with
        # no bound a poll returns everything prefetched (a backfill: ~2,500 records per partition), the
        # buffer fills, and the hand-over of every topic waits for the slow agent: live events stalled
        # for up to 80 s behind a backfill of 100,000 (bench/README.md, "Backfill beside live events").
        broker_max_poll_records=MAX_POLL_RECORDS,
        stream_processing_timeout=PAUSE_TOLERATED,
        Worker=QuietWorker,
    )
    health.configure(settings.data_dir)
    app.sensors.add(SentMessages())
    from ebackpack.streaming.offset_guard import (
        guard_offsets,  # imports ebackpack.ops, which imports this package
    )

    guard_offsets(app, settings)  # committed offsets beyond the log end: the broker lost data
    if settings.metrics_port:
        _serve_metrics(app, settings)
    return app


class SentMessages(Sensor):
    """Counts every message the broker acknowledged (`ebackpack_messages_out_total{topic}`)."""

    def on_send_completed(self, producer: ProducerT, state: Any, metadata: RecordMetadata) -> None:
        metrics.message_out(metadata.topic)


def _serve_metrics(app: faust.App, settings: Settings) -> None:
    """When the worker starts: /metrics on `settings.metrics_port`, and every `LAG_INTERVAL` seconds
    the lag of this worker's consumer group on the topics its agents read, from the broker's committed
    and end offsets (each replica reports its whole group: aggregate with max, not sum)."""
    group = app.conf.id
    probe: dict[str, Any] = {}

    def sample(topics: list[str]) -> dict[tuple[str, int], int]:
        from ebackpack.adapters.broker import Broker, group_lag

        if "broker" not in probe:
            probe["broker"] = Broker(settings, timeout=5.0)
        try:
            return group_lag(probe["broker"], group, topics)
        except Exception:
            probe.pop("broker").close()  # reconnect next time
            raise

    @app.task
    async def serve_metrics() -> None:
        metrics.serve_worker_metrics(settings)

    @app.timer(metrics.LAG_INTERVAL)
    async def sample_consumer_lag() -> None:
        topics = sorted(
            {name for agent in app.agents.values() for name in getattr(agent.channel, "topics", ())}
        )
        try:
            lags = await asyncio.to_thread(sample, topics)
        except Exception as exc:  # the broker is away: the gauge's sample time goes stale
            log.warning("consumer lag of %s not read: %s", group, exc)
            return
        metrics.set_consumer_lag(group, lags)


def raw_topic(app: faust.App, name: str) -> TopicT:
    """Keys and values stay bytes: parsing is ours, so a bad message can be dead-lettered as-is."""
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", internal=False
    )


async def send_and_wait(topic: TopicT, key: bytes | None, value: bytes) -> None:
    """Returns only after the broker acknowledged the message.

    `force=True`: without it faust attaches a send made inside an agent to the current event and
    sends it only when that event is acked, which would wait on itself here.
    """
    fut = await topic.send(key=key, value=value, force=True)
    await fut


class TopicDeadLetters:
    """The `DeadLetterSink` of a worker: a faust topic. The letters are handed to the producer in order
    (`force=True`, as in `send_and_wait`), then every acknowledgement is awaited."""

    def __init__(self, topic: TopicT) -> None:
        self.topic = topic

    async def send(self, letters: Sequence[Letter]) -> None:
        acks = [await self.topic.send(key=key, value=value, force=True) for key, value in letters]
        await asyncio.gather(*acks)


def _source(event: Any) -> SourceMessage:
    """The message as the broker has it: a tombstone's value stays None (not b""), so a handler can
    tell "this key was deleted" from an empty, invalid value."""
    msg = event.message
    return SourceMessage(msg.topic, msg.partition, msg.offset, event.key, event.value)


async def _one_at_a_time(stream: Any) -> AsyncIterator[list[SourceMessage]]:
    async for event in stream.events():
        yield [_source(event)]


async def _in_batches(stream: Any, size: int, within: float) -> AsyncIterator[list[SourceMessage]]:
    async for events in stream.take_events(size, within):
        yield [_source(event) for event in events]


def _retrying(stream: Any, consumer: str, policy: RetryPolicy | None) -> Retrying:
    topics = getattr(getattr(stream, "channel", None), "topics", None) or ("?",)
    return Retrying(policy or RetryPolicy(), health.StreamHealth(consumer, ",".join(sorted(topics))))


async def consume(
    stream: AsyncIterable[Any],
    handle: Handler,
    *,
    dlq: TopicT,
    consumer: str,
    policy: RetryPolicy | None = None,
) -> AsyncIterable[Any]:
    """Run `handle` on each message of a faust stream through `steps.message_pipeline`.

    Yields each handler result (None for a dead letter): faust acks the message when the next one is
    asked for, i.e. only after the work.
    """
    retrying = _retrying(stream, consumer, policy)
    pipeline = message_pipeline(handle, TopicDeadLetters(dlq), consumer=consumer, retrying=retrying)
    async for batch in run(_one_at_a_time(stream), pipeline):
        for result in batch.results:
            yield result


async def consume_batches(
    stream: Any,
    handle_batch: BatchHandler,
    *,
    dlq: TopicT,
    consumer: str,
    size: int,
    within: float,
    policy: RetryPolicy | None = None,
) -> AsyncIterable[int]:
    """Up to `size` messages at a time (whatever arrived within `within` seconds) of a faust stream through
    `steps.batch_pipeline`; a batch that fails is handled again by `handle_batch` one message at a time.

    Yields each batch's size: faust acks a batch's offsets when the next batch is asked for, i.e. only
    after the work.
    """
    retrying = _retrying(stream, consumer, policy)
    pipeline = batch_pipeline(handle_batch, TopicDeadLetters(dlq), consumer=consumer, retrying=retrying)
    async for batch in run(_in_batches(stream, size, within), pipeline):
        yield len(batch.messages)


def message_agent(
    app: faust.App,
    topic: TopicT,
    name: str,
    handle: Handler,
    *,
    dlq: TopicT,
    consumer: str,
    policy: RetryPolicy | None = None,
) -> None:
    """Adds the agent `name` to the worker's app: `handle` on each message of `topic` (`consume`)."""

    async def agent(stream: faust.StreamT) -> None:
        async for _ in consume(stream, handle, dlq=dlq, consumer=consumer, policy=policy):
            pass

    app.agent(topic, name=name)(agent)


def batch_agent(
    app: faust.App,
    topic: TopicT,
    name: str,
    handle_batch: BatchHandler,
    *,
    dlq: TopicT,
    consumer: str,
    size: int,
    within: float,
) -> None:
    """Adds the agent `name` to the worker's app: `handle_batch` on batches of `topic`
    (`consume_batches`)."""

    async def agent(stream: faust.StreamT) -> None:
        async for _ in consume_batches(
            stream, handle_batch, dlq=dlq, consumer=consumer, size=size, within=within
        ):
            pass

    app.agent(topic, name=name)(agent)


def run_worker(app: faust.App, loglevel: str = "warn") -> None:
    """Run a faust worker in this process (faust reads its options from argv)."""
    import sys

    # `--without-web`: the worker command starts faust's web server even with web_enabled=False.
    sys.argv = [sys.argv[0], "worker", "--without-web", "--loglevel", loglevel, *sys.argv[1:]]
    app.main()
