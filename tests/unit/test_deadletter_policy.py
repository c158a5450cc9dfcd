"""The dead-letter and pause policy (ebackpack/streaming/policy.py): what happens to a message that cannot be
processed. The consume loops run on an in-memory stream and an in-memory dead-letter topic."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from ebackpack.adapters import metrics
from ebackpack.streaming import health
from ebackpack.streaming.app import BatchOutcome, consume, consume_batches
from ebackpack.streaming.errors import InvalidMessage, TransientError, is_transient, parse_message
from ebackpack.streaming.policy import GaveUp, RetryPolicy, SourceMessage, dead_letter, with_retries
from schemas import DeadLetterMessage, MoodleEventMessage

FAST = RetryPolicy(max_attempts=3, first_delay=0.001, max_delay=0.002)
PAUSING = RetryPolicy(first_delay=0.001, max_delay=0.004)  # a consumer's policy: no attempt limit
SOURCE = SourceMessage("moodle.events", 2, 41, b"5721", b'{"not": "an event"}')


def run(step, policy=FAST):
    return asyncio.run(with_retries(step, policy))


# --- an in-memory stream and dead-letter topic (the shapes faust hands to consume) --------------------


@dataclass
class Message:
    topic: str
    partition: int
    offset: int


@dataclass
class Event:
    message: Message
    key: bytes | None
    value: bytes | None


class Channel:
    topics = ("t",)


@dataclass
class Stream:
    values: list[bytes | None]
    channel: Channel = field(default_factory=Channel)

    def _events(self) -> list[Event]:
        return [Event(Message("t", 0, i), b"k", v) for i, v in enumerate(self.values)]

    async def events(self) -> AsyncIterator[Event]:
        for event in self._events():
            yield event

    async def take_events(self, size: int, within: float) -> AsyncIterator[list[Event]]:
        events = self._events()
        for i in range(0, len(events), size):
            yield events[i : i + size]


@dataclass
class DeadLetters:
    sent: list[DeadLetterMessage] = field(default_factory=list)

    async def send(self, key: bytes | None, value: bytes, force: bool) -> asyncio.Future[None]:
        self.sent.append(DeadLetterMessage.model_validate_json(value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def drain(stream: AsyncIterator[Any]) -> list[Any]:
    async def go() -> list[Any]:
        return [item async for item in stream]

    return asyncio.run(go())


class Outage:
    """A dependency that is down for the first `failures` calls, then answers."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def check(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error


def s3_error(status: int, code: str) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


def paused_gauge(consumer: str) -> float:
    return metrics.sample_value("ebackpack_consumer_paused", {"consumer": consumer})


# --- one step ------------------------------------------------------------------------------------------


def test_transient_failures_are_retried_until_they_succeed() -> None:
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("SELECT 1", {}, Exception("database is locked"))
        return "done"

    assert run(flaky) == "done" and len(calls) == 3


def test_a_bounded_policy_gives_up_with_the_attempt_count() -> None:
    """Timers and background tasks use a bounded policy; their next round tries again."""

    async def down() -> None:
        raise TransientError("S3 unreachable")

    with pytest.raises(GaveUp, match="gave up after 3 attempts: S3 unreachable"):
        run(down)


def test_the_consumer_policy_has_no_attempt_limit_and_a_capped_backoff() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts is None
    assert [policy.delay(n) for n in (1, 2, 3)] == [0.25, 0.5, 1.0]
    assert policy.delay(10) == policy.delay(10_000) == policy.max_delay <= 30.0


def test_poison_is_not_retried() -> None:
    calls = []

    async def poison() -> None:
        calls.append(1)
        raise InvalidMessage("bad bytes")

    with pytest.raises(InvalidMessage):
        run(poison)
    assert len(calls) == 1


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("SELECT 1", {}, Exception("connection refused")),
        InterfaceError("SELECT 1", {}, Exception("connection already closed")),
        DBAPIError("SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1/bucket"),
        s3_error(500, "InternalError"),
        s3_error(503, "SlowDown"),
        KafkaConnectionError("broker away"),
        KafkaTimeoutError(),
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        TransientError("SMTP server unreachable"),
        psycopg.OperationalError("connection failed: Connection refused"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_unavailable_dependency_is_transient(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        IntegrityError("INSERT", {}, Exception("duplicate key")),
        DBAPIError("SELECT 1", {}, Exception("syntax error"), connection_invalidated=False),
        s3_error(404, "NoSuchBucket"),
        ParamValidationError(report="bad key"),
        MessageSizeTooLargeError(),
        KeyError("bug"),
        InvalidMessage("bad bytes"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_message_or_code_problem_is_not_transient(error: Exception) -> None:
    assert not is_transient(error)


def test_a_dead_letter_keeps_the_original_bytes_source_position_and_a_readable_reason() -> None:
    with pytest.raises(InvalidMessage) as raised:
        parse_message(MoodleEventMessage, SOURCE.value)
    error = raised.value
    letter = dead_letter(SOURCE, error, "issuer", "ebackpack/issuer")
    assert letter.data.value == SOURCE.value and letter.data.key_b64 == "NTcyMQ=="
    assert (letter.data.topic, letter.data.partition, letter.data.offset) == ("moodle.events", 2, 41)
    assert letter.data.reason.startswith("invalid MoodleEventMessage: id: Field required")
    assert "data: Field required" in letter.data.reason
    assert letter.data.error_type == "InvalidMessage"
    # the same message dead-lettered again (redelivery) keeps its id
    assert dead_letter(SOURCE, error, "issuer", "x").id == letter.id


# --- the consume loops -----------------------------------------------------------------------------------


def test_an_outage_pauses_the_stream_on_its_message_and_dead_letters_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """50 failed attempts (far beyond the old limit of 12): the same message is tried until the dependency
    answers; no later message is handled before it; the pause is reported and cleared."""
    outage = Outage(50, OperationalError("INSERT", {}, ConnectionRefusedError("connection refused")))
    handled: list[bytes | None] = []
    paused_during: list[float] = []

    async def handle(message: SourceMessage) -> bytes | None:
        if message.offset == 0:
            if outage.calls == 10:
                paused_during.append(paused_gauge("outage-test"))
            outage.check()
        handled.append(message.value)
        return message.value

    dlq = DeadLetters()
    with caplog.at_level(logging.INFO):
        results = drain(
            consume(
                Stream([b"a", b"b", b"c"]),
                handle,
                dlq=dlq,
                consumer="outage-test",  # type: ignore[arg-type]
                policy=PAUSING,
            )
        )
    assert results == handled == [b"a", b"b", b"c"]  # in order, each once, after the outage
    assert outage.calls == 51 and dlq.sent == []
    assert paused_during == [1.0] and paused_gauge("outage-test") == 0.0
    text = caplog.text
    assert "paused outage-test on t" in text and "resumed outage-test on t after" in text


def test_a_batch_outage_pauses_on_the_batch_and_poison_still_goes_to_the_dead_letters() -> None:
    outage = Outage(30, EndpointConnectionError(endpoint_url="http://127.0.0.1:1/"))
    batches: list[list[int]] = []

    async def handle_batch(messages: list[SourceMessage]) -> BatchOutcome:
        outage.check()
        batches.append([m.offset for m in messages])
        return BatchOutcome(
            poison=[(i, InvalidMessage("bad")) for i, m in enumerate(messages) if m.value == b"x"]
        )

    dlq = DeadLetters()
    sizes = drain(
        consume_batches(
            Stream([b"a", b"x", b"c", b"d"]),
            handle_batch,
            dlq=dlq,  # type: ignore[arg-type]
            consumer="batch-test",
            size=2,
            within=0.01,
            policy=PAUSING,
        )
    )
    assert sizes == [2, 2] and batches == [[0, 1], [2, 3]] and outage.calls == 32
    assert [(d.data.offset, d.data.error_type) for d in dlq.sent] == [(1, "InvalidMessage")]


def test_a_bug_is_dead_lettered_and_the_stream_goes_on() -> None:
    async def handle(message: SourceMessage) -> int:
        if message.offset == 1:
            raise KeyError("a bug")
        return message.offset

    dlq = DeadLetters()
    assert drain(
        consume(
            Stream([b"a", b"b", b"c"]),
            handle,
            dlq=dlq,
            consumer="bug-test",  # type: ignore[arg-type]
            policy=PAUSING,
        )
    ) == [0, None, 2]
    assert [(d.data.offset, d.data.error_type) for d in dlq.sent] == [(1, "KeyError")]


def test_a_tombstone_reaches_the_handler_as_none() -> None:
    seen: list[bytes | None] = []

    async def handle(message: SourceMessage) -> None:
        seen.append(message.value)

    dlq = DeadLetters()
    drain(consume(Stream([b"profile", None]), handle, dlq=dlq, consumer="tombstone-test"))  # type: ignore[arg-type]
    assert seen == [b"profile", None] and dlq.sent == []


def test_a_tombstone_where_a_value_is_needed_is_poison_with_a_reason() -> None:
    async def handle(message: SourceMessage) -> None:
        parse_message(MoodleEventMessage, message.body)

    dlq = DeadLetters()
    drain(consume(Stream([None]), handle, dlq=dlq, consumer="tombstone-test"))  # type: ignore[arg-type]
    assert [d.data.reason for d in dlq.sent] == ["a tombstone (no value) where a message was expected"]
    assert dlq.sent[0].data.value == b""


def test_status_lists_a_paused_stream_while_it_is_paused(tmp_path: Path) -> None:
    """What `ebackpack status` shows: the paused stream, since when and why; nothing once it resumed."""
    from rich.console import Console

    health.configure(tmp_path)
    stream = health.StreamHealth("renderer", "certificates.render")
    try:
        stream.paused(EndpointConnectionError(endpoint_url="http://127.0.0.1:8333/ebackpack"))
        [paused] = health.paused_streams(tmp_path)
        assert (paused.consumer, paused.topic) == ("renderer", "certificates.render")
        assert "Could not connect to the endpoint URL" in paused.reason
        console = Console(width=200, record=True)
        console.print(health.consumer_health(tmp_path, f"sqlite:///{tmp_path / 'none.db'}"))
        text = console.export_text()
        assert "renderer" in text and "certificates.render" in text
        assert "database is not reachable" in text or "parked" in text
    finally:
        stream.resumed(1.0)
        health._state_dir.clear()
    assert health.paused_streams(tmp_path) == []


def test_a_worker_stopping_while_paused_says_so_and_clears_the_pause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def down() -> None:
        raise ConnectionRefusedError(111, "refused")

    async def stop_while_paused() -> None:
        task = asyncio.create_task(with_retries(down, PAUSING, health.StreamHealth("stop-test", "t")))
        while paused_gauge("stop-test") != 1.0:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.WARNING):
        asyncio.run(stop_while_paused())
    assert paused_gauge("stop-test") == 0.0
    assert "stopping stop-test on t after" in caplog.text and "resumed stop-test" not in caplog.text
