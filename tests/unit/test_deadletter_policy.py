"""The dead-letter policy: what happens to a message that cannot be processed."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError

from ebackpack.streaming.errors import InvalidMessage, TransientError, parse_message
from ebackpack.streaming.policy import GaveUp, RetryPolicy, SourceMessage, dead_letter, with_retries
from schemas import MoodleEventMessage

FAST = RetryPolicy(max_attempts=3, first_delay=0.001, max_delay=0.002)
SOURCE = SourceMessage("moodle.events", 2, 41, b"5721", b'{"not": "an event"}')


def run(step, policy=FAST):
    return asyncio.run(with_retries(step, policy))


def test_transient_failures_are_retried_until_they_succeed() -> None:
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("SELECT 1", {}, Exception("database is locked"))
        return "done"

    assert run(flaky) == "done" and len(calls) == 3


def test_a_transient_failure_that_persists_gives_up_with_the_attempt_count() -> None:
    async def down() -> None:
        raise TransientError("S3 unreachable")

    with pytest.raises(GaveUp, match="gave up after 3 attempts: S3 unreachable"):
        run(down)


def test_poison_is_not_retried() -> None:
    calls = []

    async def poison() -> None:
        calls.append(1)
        raise InvalidMessage("bad bytes")

    with pytest.raises(InvalidMessage):
        run(poison)
    assert len(calls) == 1


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
