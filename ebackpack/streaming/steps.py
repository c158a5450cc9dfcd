"""The stream runtime as small steps, each with one job (in the spirit of Sentry arroyo's strategies).

A consumer's whole runtime reads in `batch_pipeline` (and `message_pipeline` for unbatched consumers):

    count the messages in -> handle the batch -> handle alone what the batch could not ->
    dead-letter the invalid ones -> record the time -> the source commits

A source turns what the broker hands over into lists of `SourceMessage` and commits a list only after its
last step (`run`): faust (streaming/app.py) by asking for the next batch, which acks the previous one; the
in-memory stream (streaming/memory.py) by recording the offsets. What each outcome means is policy.py's:
a transient failure pauses on the batch (retried until it works), invalid messages and bugs become dead
letters, and a dead letter that cannot be sent pauses the stream before anything is committed.
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ebackpack.adapters import metrics

from .policy import PauseReport, RetryPolicy, SourceMessage, dead_letter, with_retries

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class BatchOutcome:
    """What a batch handler could not do itself: its poison messages (index, why), to dead-letter."""

    poison: list[tuple[int, Exception]] = field(default_factory=list)


BatchHandler = Callable[[list[SourceMessage]], Awaitable[BatchOutcome]]
Handler = Callable[[SourceMessage], Awaitable[Any]]


Letter = tuple[bytes | None, bytes]  # (key, value) of a dead letter


class DeadLetterSink(Protocol):
    """Where dead letters go (a faust topic in a worker, a list in tests)."""

    async def send(self, letters: Sequence[Letter]) -> None:
        """Returns only once every dead letter is stored (the broker acknowledged each)."""


@dataclass
class Batch:
    """One batch on its way through the steps, with what they found out about it so far."""

    messages: list[SourceMessage]
    started: float = field(default_factory=time.perf_counter)
    invalid: dict[int, Exception] = field(default_factory=dict)  # index -> why: for the dead letters
    one_by_one: list[int] = field(default_factory=list)  # indexes to hand to the handler again, alone
    results: list[Any] = field(default_factory=list)  # what a single-message handler returned, in order

    def next_offsets(self) -> dict[tuple[str, int], int]:
        """What committing this batch stores: per (topic, partition), the next offset to read."""
        offsets: dict[tuple[str, int], int] = {}
        for m in self.messages:
            offsets[m.topic, m.partition] = max(offsets.get((m.topic, m.partition), 0), m.offset + 1)
        return offsets


Step = Callable[[Batch], Awaitable[None]]


@dataclass(frozen=True)
class Retrying:
    """The retry policy of one stream: a transient failure is tried again (the stream pauses meanwhile,
    told to `report`); anything else is raised."""

    policy: RetryPolicy
    report: PauseReport | None = None

    async def __call__(self, step: Callable[[], Awaitable[T]]) -> T:
        return await with_retries(step, self.policy, self.report)


@dataclass(frozen=True)
class CountMessagesIn:
    consumer: str

    async def __call__(self, batch: Batch) -> None:
        for topic, count in collections.Counter(m.topic for m in batch.messages).items():
            metrics.message_in(topic, self.consumer, count)


@dataclass(frozen=True)
class HandleBatch:
    """The handler on the whole batch. Its poison goes to the dead letters. A batch that fails otherwise
    (not transiently: that pauses here) is handed again one message at a time, so one poison message
    cannot hold back the others; a lone message goes to the dead letters at once (alone again, it would
    be the same call)."""

    handler: BatchHandler
    retrying: Retrying

    async def __call__(self, batch: Batch) -> None:
        try:
            outcome = await self.retrying(functools.partial(self.handler, batch.messages))
        except Exception as exc:
            if len(batch.messages) == 1:
                batch.invalid[0] = exc
                return
            log.warning("batch of %d failed (%s): handling its messages one by one", len(batch.messages), exc)
            batch.one_by_one = list(range(len(batch.messages)))
            return
        batch.invalid.update(outcome.poison)


@dataclass(frozen=True)
class HandleOneByOne:
    """The batch handler again on each message the batch failed on, as a batch of one."""

    handler: BatchHandler
    retrying: Retrying

    async def __call__(self, batch: Batch) -> None:
        for index in batch.one_by_one:
            try:
                outcome = await self.retrying(functools.partial(self.handler, [batch.messages[index]]))
            except Exception as exc:
                batch.invalid[index] = exc
                continue
            for _, poison in outcome.poison:
                batch.invalid[index] = poison


@dataclass(frozen=True)
class HandleEach:
    """A single-message handler on each message in turn; what it raises (not transiently) is invalid."""

    handle: Handler
    retrying: Retrying

    async def __call__(self, batch: Batch) -> None:
        for index, message in enumerate(batch.messages):
            try:
                batch.results.append(await self.retrying(functools.partial(self.handle, message)))
            except Exception as exc:
                batch.invalid[index] = exc
                batch.results.append(None)


@dataclass(frozen=True)
class SendDeadLetters:
    """Each invalid message to the dead letters, with the reason and its original bytes. A dead letter must
    not be lost either: while the sink cannot take them, the stream pauses here, before its commit.

    A batch's letters are sent together and their acknowledgements awaited together: one round trip to
    the broker a batch instead of one a letter. Should the sink fail part-way, the retry sends them all
    again, so a letter may be stored twice (at least once, like every message here)."""

    sink: DeadLetterSink
    consumer: str
    retrying: Retrying

    async def __call__(self, batch: Batch) -> None:
        letters = []
        for index, exc in sorted(batch.invalid.items()):
            source = batch.messages[index]
            letter = dead_letter(source, exc, self.consumer, producer=f"ebackpack/{self.consumer}")
            log.warning(
                "dead-lettered %s/%d/%d: %s",
                source.topic,
                source.partition,
                source.offset,
                letter.data.reason,
            )
            letters.append((source.key, letter))
        if not letters:
            return
        await self.retrying(functools.partial(self.sink.send, [(key, lt.to_bytes()) for key, lt in letters]))
        for _, letter in letters:
            metrics.dead_lettered(self.consumer, letter.data.error_type)


@dataclass(frozen=True)
class RecordProcessed:
    """The time each message took (a batch's messages each get the mean) and, for batched consumers, the
    batch's time."""

    consumer: str
    batched: bool

    async def __call__(self, batch: Batch) -> None:
        elapsed = time.perf_counter() - batch.started
        if self.batched:
            metrics.batch_processed(self.consumer, elapsed)
        metrics.processed(self.consumer, elapsed, len(batch.messages))


@dataclass(frozen=True)
class Pipeline:
    steps: tuple[Step, ...]

    async def __call__(self, messages: list[SourceMessage]) -> Batch:
        batch = Batch(messages)
        for step in self.steps:
            await step(batch)
        return batch


def batch_pipeline(
    handler: BatchHandler, dead_letters: DeadLetterSink, *, consumer: str, retrying: Retrying
) -> Pipeline:
    """A batched consumer's runtime; the source commits each batch after the last step."""
    handling = (HandleBatch(handler, retrying), HandleOneByOne(handler, retrying))
    return _counted(handling, dead_letters, consumer, retrying, batched=True)


def message_pipeline(
    handle: Handler, dead_letters: DeadLetterSink, *, consumer: str, retrying: Retrying
) -> Pipeline:
    """An unbatched consumer's runtime (its source hands over one message at a time)."""
    return _counted((HandleEach(handle, retrying),), dead_letters, consumer, retrying, batched=False)


def _counted(
    handling: tuple[Step, ...], dead_letters: DeadLetterSink, consumer: str, retrying: Retrying, batched: bool
) -> Pipeline:
    """The handling steps between counting the messages in, and the dead letters and the count out."""
    return Pipeline(
        (
            CountMessagesIn(consumer),
            *handling,
            SendDeadLetters(dead_letters, consumer, retrying),
            RecordProcessed(consumer, batched=batched),
        )
    )


async def run(source: AsyncIterable[list[SourceMessage]], pipeline: Pipeline) -> AsyncIterator[Batch]:
    """Each list from `source` through every step of `pipeline`, then handed to the caller, who commits it.
    Nothing later is taken from `source` while a step pauses."""
    async for messages in source:
        yield await pipeline(messages)
