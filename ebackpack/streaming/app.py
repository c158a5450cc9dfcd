"""Faust app factory and the consume loop every agent uses."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any

import faust
from faust.types import TopicT

from ebackpack.config import Settings

from .policy import RetryPolicy, SourceMessage, dead_letter, with_retries

log = logging.getLogger(__name__)


def make_app(name: str, settings: Settings) -> faust.App:
    datadir = (settings.data_dir / "faust" / name).resolve()
    datadir.parent.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    return faust.App(
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
    )


def raw_topic(app: faust.App, name: str) -> TopicT:
    """Keys and values stay bytes: parsing is ours, so a bad message can be dead-lettered as-is."""
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", internal=False)


async def send_and_wait(topic: TopicT, key: bytes | None, value: bytes) -> None:
    """Returns only after the broker acknowledged the message.

    `force=True`: without it faust attaches a send made inside an agent to the current event and
    sends it only when that event is acked, which would wait on itself here.
    """
    fut = await topic.send(key=key, value=value, force=True)
    await fut


Handler = Callable[[SourceMessage], Awaitable[Any]]


async def consume(stream: AsyncIterable[Any], handle: Handler, *, dlq: TopicT, consumer: str,
                  policy: RetryPolicy | None = None) -> AsyncIterable[Any]:
    """Run `handle` on each message; a failure becomes a dead letter and the stream goes on.

    Yields each handler result so faust acks (and later commits) the offset only after the work.
    """
    policy = policy or RetryPolicy()
    async for event in stream.events():  # type: ignore[attr-defined]
        msg = event.message
        source = SourceMessage(msg.topic, msg.partition, msg.offset, event.key, event.value or b"")
        try:
            result = await with_retries(functools.partial(handle, source), policy)
        except Exception as exc:
            letter = dead_letter(source, exc, consumer, producer=f"ebackpack/{consumer}")
            log.warning("dead-lettered %s/%d/%d: %s", source.topic, source.partition, source.offset,
                        letter.data.reason)
            # A dead letter must not be lost either: retried like any transient failure. If the
            # dead-letter topic stays unreachable the agent stops without committing this offset.
            await with_retries(functools.partial(send_and_wait, dlq, source.key, letter.to_bytes()), policy)
            result = None
        yield result


def run_worker(app: faust.App, loglevel: str = "warn") -> None:
    """Run a faust worker in this process (faust reads its options from argv)."""
    import sys

    # `--without-web`: the worker command starts faust's web server even with web_enabled=False.
    sys.argv = [sys.argv[0], "worker", "--without-web", "--loglevel", loglevel, *sys.argv[1:]]
    app.main()
