"""The stream runtime's steps (ebackpack/streaming/steps.py) on the in-memory stream: what is handled, what
becomes a dead letter, what is committed when, and the metrics, without faust or a broker."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.exc import OperationalError

from ebackpack.adapters import metrics
from ebackpack.streaming.errors import InvalidMessage
from ebackpack.streaming.memory import (
    MemoryDeadLetters,
    MemoryStream,
    RecordedPauses,
    in_batches,
    messages,
)
from ebackpack.streaming.policy import RetryPolicy, SourceMessage
from ebackpack.streaming.steps import BatchOutcome, Retrying, batch_pipeline, message_pipeline

PAUSING = RetryPolicy(first_delay=0.001, max_delay=0.002, report_after=3)  # a consumer's: no attempt limit
DOWN = OperationalError("INSERT", {}, ConnectionRefusedError("connection refused"))
DEADLINE = 30.0  # seconds: generous, a busy machine is no failure


def consumer_name() -> str:
    return f"steps-{uuid.uuid4().hex[:8]}"  # metrics are process-wide: a name per test


class Handled:
    """A batch handler that records each call's offsets; a message whose value is b"bad" is its poison."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    async def __call__(self, batch: list[SourceMessage]) -> BatchOutcome:
        self.calls.append([m.offset for m in batch])
        return BatchOutcome(
            poison=[(i, InvalidMessage("bad")) for i, m in enumerate(batch) if m.value == b"bad"]
        )


def run_batches(stream: MemoryStream, handler, sink: MemoryDeadLetters, consumer: str, report=None):
    retrying = Retrying(PAUSING, report)
    return asyncio.run(stream.run(batch_pipeline(handler, sink, consumer=consumer, retrying=retrying)))


def test_a_good_batch_is_handled_and_committed() -> None:
    stream, sink, handler = (
        MemoryStream(in_batches(messages([b"a", b"b", b"c"]), 2)),
        MemoryDeadLetters(),
        Handled(),
    )
    run_batches(stream, handler, sink, consumer_name())
    assert handler.calls == [[0, 1], [2]]
    assert stream.commits == [{("t", 0): 2}, {("t", 0): 3}] and sink.letters == []


def test_an_invalid_message_is_dead_lettered_and_the_others_go_on() -> None:
    stream, sink, handler = MemoryStream([messages([b"a", b"bad", b"c"])]), MemoryDeadLetters(), Handled()
    run_batches(stream, handler, sink, "issuer")
    assert handler.calls == [[0, 1, 2]] and stream.committed == {("t", 0): 3}
    [letter] = sink.letters
    assert (letter.data.offset, letter.data.error_type, letter.data.consumer) == (
        1,
        "InvalidMessage",
        "issuer",
    )
    assert letter.data.value == b"bad" and letter.data.key_b64 == "aw=="  # the original bytes, key b"k"


def test_a_transient_failure_pauses_on_the_batch_until_it_works_without_committing_past_it() -> None:
    stream, sink, pauses = (
        MemoryStream(in_batches(messages([b"a", b"b", b"c", b"d"]), 2)),
        MemoryDeadLetters(),
        RecordedPauses(),
    )
    attempts: list[int] = []
    committed_while_down: list[dict[tuple[str, int], int]] = []

    async def handler(batch: list[SourceMessage]) -> BatchOutcome:
        if batch[0].offset == 2:
            attempts.append(1)
            if len(attempts) <= 20:  # the database is down for 20 attempts
                committed_while_down.append(stream.committed)
                raise DOWN
        return BatchOutcome()

    run_batches(stream, handler, sink, consumer_name(), pauses)
    assert len(attempts) == 21 and sink.letters == []  # an outage is no dead letter
    assert committed_while_down == [{("t", 0): 2}] * 20  # the first batch only, never past the paused one
    assert stream.committed == {("t", 0): 4}
    assert len(pauses.causes) == 1 and len(pauses.resumed_after) == 1  # reported once, and cleared


def test_a_failing_batch_is_handled_again_one_message_at_a_time() -> None:
    stream, sink = MemoryStream([messages([b"a", b"bug", b"c", b"bad"])]), MemoryDeadLetters()
    calls: list[list[int]] = []

    async def handler(batch: list[SourceMessage]) -> BatchOutcome:
        calls.append([m.offset for m in batch])
        if any(m.value == b"bug" for m in batch):
            raise KeyError("a bug in one message's path")
        return BatchOutcome(
            poison=[(i, InvalidMessage("bad")) for i, m in enumerate(batch) if m.value == b"bad"]
        )

    run_batches(stream, handler, sink, consumer_name())
    assert calls == [[0, 1, 2, 3], [0], [1], [2], [3]]
    assert [(d.data.offset, d.data.error_type) for d in sink.letters] == [
        (1, "KeyError"),
        (3, "InvalidMessage"),
    ]
    assert sink.attempts == 1  # the batch's letters in one send, their acknowledgements awaited together
    assert stream.committed == {("t", 0): 4}


def test_a_lone_message_that_fails_is_dead_lettered_without_a_second_call() -> None:
    stream, sink = MemoryStream([messages([b"bug"])]), MemoryDeadLetters()
    calls: list[list[int]] = []

    async def handler(batch: list[SourceMessage]) -> BatchOutcome:
        calls.append([m.offset for m in batch])
        raise KeyError("a bug")

    run_batches(stream, handler, sink, consumer_name())
    assert calls == [[0]] and sink.offsets == [0] and stream.committed == {("t", 0): 1}


def test_a_dead_letter_sink_that_is_down_pauses_the_stream_without_committing() -> None:
    stream = MemoryStream(in_batches(messages([b"a", b"bad", b"c"]), 2))
    sink, pauses, handler = MemoryDeadLetters(reachable=False), RecordedPauses(), Handled()
    retrying = Retrying(PAUSING, pauses)

    async def go() -> None:
        task = asyncio.create_task(
            stream.run(batch_pipeline(handler, sink, consumer="issuer", retrying=retrying))
        )
        async with asyncio.timeout(DEADLINE):
            while sink.attempts < 5:
                await asyncio.sleep(0.001)
        assert stream.commits == [] and handler.calls == [[0, 1]]  # paused on the first batch's dead letter
        assert len(pauses.causes) == 1
        sink.reachable = True
        await asyncio.wait_for(task, DEADLINE)

    asyncio.run(go())
    assert sink.offsets == [1] and handler.calls == [[0, 1], [2]]
    assert stream.commits == [{("t", 0): 2}, {("t", 0): 3}] and len(pauses.resumed_after) == 1


def test_single_messages_go_through_the_same_steps() -> None:
    """`consume`'s pipeline: each handler result, None for a dead letter; a tombstone reaches the handler."""
    stream, sink = MemoryStream([[m] for m in messages([b"1", None, b"x", b"3"])]), MemoryDeadLetters()

    async def handle(message: SourceMessage) -> int | None:
        if message.value == b"x":
            raise InvalidMessage("not a number")
        return None if message.value is None else int(message.value)

    pipeline = message_pipeline(handle, sink, consumer=consumer_name(), retrying=Retrying(PAUSING))
    batches = asyncio.run(stream.run(pipeline))
    assert [b.results for b in batches] == [[1], [None], [None], [3]]
    assert sink.offsets == [2] and stream.committed == {("t", 0): 4}


def test_the_metrics_count_messages_in_processing_batches_and_dead_letters() -> None:
    consumer = consumer_name()
    source = messages([b"a", b"bad"], topic="moodle.events") + messages([b"c"], topic="moodle.users")
    stream, sink = MemoryStream(in_batches(source, 2)), MemoryDeadLetters()
    run_batches(stream, Handled(), sink, consumer)

    def value(name: str, **labels: str) -> float:
        return metrics.sample_value(name, {"consumer": consumer, **labels})

    assert value("ebackpack_messages_in_total", topic="moodle.events") == 2
    assert value("ebackpack_messages_in_total", topic="moodle.users") == 1
    assert value("ebackpack_processing_seconds_count") == 3
    assert value("ebackpack_batch_seconds_count") == 2
    assert value("ebackpack_dead_letters_total", reason="InvalidMessage") == 1
