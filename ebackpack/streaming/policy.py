"""What a consumer does with a message it could not process. Every consumer (issuer, renderer, importer,
notifier, batched or not) goes through the steps of `streaming/steps.py` (fed by `streaming/app.py`), which
apply this file and nothing else.

1. `InvalidMessage` (bad bytes, a tombstone where a value is needed, schema violation)
       -> dead-letter topic at once; the stream goes on.
2. Transient: a dependency is down (`errors.is_transient`: database, S3, broker connection errors)
       -> the consumer PAUSES on this message: it takes nothing later and commits nothing beyond the last
          message it finished; the same message (or batch) is tried again with backoff (0.25 s doubling
          up to `max_delay`) for as long as the dependency is down, then the stream flows on by itself.
          An outage never becomes dead letters, and the per-key order is kept.
          Seen as: the gauge `ebackpack_consumer_paused{consumer}` > 0, the log lines "paused ..." and
          "resumed ... after N s", and the "Paused consumers" table of `ebackpack status` (health.py).
          A worker stopped while paused commits nothing of it: the next start takes the message again.
3. Must wait for data that will come (the issuer: a learner or course profile not arrived yet)
       -> not a failure here: the service parks the message in SQL per learner and the stream goes on
          (`IssuerService.handle_batch` / `resume_parked`, table `parked_messages`).
4. Anything else (a bug) -> dead-letter topic with the exception; the stream goes on.
The dead letter keeps the original key and value bytes and the source topic, partition and offset,
so nothing is lost: fix the cause and replay the dead letters.
Batches (`consume_batches`): a batch that fails transiently pauses as in 2; one that fails otherwise is
handed to the same batch handler again one message at a time, so one poison message never holds back the
rest; the batch handler may also name its poison messages itself (dead-lettered as in 1). A dead letter
that cannot be sent pauses the stream as in 2: the batch is committed only once its dead letters are.
Timers and background tasks use a bounded `RetryPolicy(max_attempts=...)`: they give up (`GaveUp`)
and their next round tries again.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from schemas import DeadLetter, DeadLetterMessage, deterministic_id

from .errors import InvalidMessage, describe, is_transient

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class SourceMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None  # None: a tombstone (compacted topics: the key was deleted)

    @property
    def body(self) -> bytes:
        """The value, for a handler that needs one: a tombstone there is poison."""
        if self.value is None:
            raise InvalidMessage("a tombstone (no value) where a message was expected")
        return self.value


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int | None = None  # None: until it works (a consumer pauses meanwhile)
    first_delay: float = 0.25
    max_delay: float = 15.0  # the most a recovered dependency waits for the next attempt
    report_after: int = 3  # failed attempts (~0.75 s) before the pause is reported: a lock wait is not one

    def delay(self, attempt: int) -> float:
        return min(self.first_delay * 2 ** min(attempt - 1, 30), self.max_delay)


class PauseReport(Protocol):
    """Told when a stream pauses on a dependency and when it flows again (health.py reports it)."""

    def paused(self, cause: BaseException) -> None: ...

    def resumed(self, seconds: float, stopped: bool = False) -> None: ...  # stopped: the worker stops


class GaveUp(Exception):
    def __init__(self, attempts: int, cause: BaseException):
        super().__init__(f"gave up after {attempts} attempts: {describe(cause)}")
        self.__cause__ = cause


async def with_retries(
    step: Callable[[], Awaitable[T]], policy: RetryPolicy, report: PauseReport | None = None
) -> T:
    """`step()` until it returns; a transient failure is tried again with backoff (until
    `policy.max_attempts`, if any); anything else is raised at once."""
    attempt, since, reported, stopped = 1, time.monotonic(), False, False
    try:
        while True:
            try:
                return await step()
            except Exception as exc:
                if not is_transient(exc) or isinstance(exc, InvalidMessage):
                    raise
                if policy.max_attempts is not None and attempt >= policy.max_attempts:
                    raise GaveUp(attempt, exc) from exc
                if report is not None and not reported and attempt >= policy.report_after:
                    report.paused(exc)
                    reported = True
                log.log(
                    logging.INFO if reported else logging.WARNING,
                    "transient failure (attempt %d), trying again in %.2f s: %s",
                    attempt,
                    policy.delay(attempt),
                    describe(exc),
                )
                await asyncio.sleep(policy.delay(attempt))
                attempt += 1
    except asyncio.CancelledError:  # the worker is stopping while paused: nothing was committed
        stopped = True
        raise
    finally:
        if reported and report is not None:
            report.resumed(time.monotonic() - since, stopped)


def dead_letter(source: SourceMessage, exc: BaseException, consumer: str, producer: str) -> DeadLetterMessage:
    cause = exc.__cause__ if isinstance(exc, GaveUp) and exc.__cause__ else exc
    value = source.value if source.value is not None else b""
    return DeadLetterMessage.build(
        id=deterministic_id("dead-letter", consumer, source.topic, source.partition, source.offset),
        source=producer,
        subject=f"{source.topic}/{source.partition}/{source.offset}",
        data=DeadLetter(
            reason=describe(exc),
            error_type=type(cause).__name__,
            consumer=consumer,
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
            key_b64=base64.b64encode(source.key).decode() if source.key is not None else None,
            value_b64=base64.b64encode(value).decode(),
        ),
    )


def survives_outages(job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """For a faust timer's body: an exception escaping a timer stops the whole worker, so a transient
    failure (database, S3 or broker down, retries given up) is logged and the next round tries again.
    Anything else still raises: a bug should not be retried forever."""

    @functools.wraps(job)
    async def run() -> None:
        try:
            await job()
        except Exception as exc:
            if not (is_transient(exc) or isinstance(exc, GaveUp)):
                raise
            log.warning("%s failed, the next round retries: %s", job.__name__, exc)

    return run
