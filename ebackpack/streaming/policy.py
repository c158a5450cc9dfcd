"""How a consumer treats one message: retry transient failures with backoff, dead-letter the rest.

Read this file to know what happens to a message that cannot be processed:
1. `InvalidMessage` (bad bytes, schema violation)      -> dead-letter topic at once.
2. Transient (`TransientError`, DB/S3/connection errors) -> retried with exponential backoff;
   after `max_attempts` -> dead-letter topic with "gave up after N attempts".
3. Anything else (a bug)                                -> dead-letter topic; the stream goes on.
The dead letter keeps the original key and value bytes and the source topic, partition and offset,
so nothing is lost: fix the cause and replay the dead letters.
Batches (`consume_batches`, the issuer): a batch handler names its poison messages (dead-lettered as in
1) and the messages it could not do yet (handled one by one as in 2); a batch that fails as a whole,
after retries, is handled again one message at a time, so one bad message never holds back the rest.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

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
    value: bytes


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 12  # backoff 0.25 s .. 8 s: ~56 s of retries, so a 30 s outage is no dead letter
    first_delay: float = 0.25
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        return min(self.first_delay * 2 ** (attempt - 1), self.max_delay)


class GaveUp(Exception):
    def __init__(self, attempts: int, cause: BaseException):
        super().__init__(f"gave up after {attempts} attempts: {describe(cause)}")
        self.__cause__ = cause


async def with_retries(step: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    attempt = 1
    while True:
        try:
            return await step()
        except Exception as exc:
            if not is_transient(exc) or isinstance(exc, InvalidMessage):
                raise
            if attempt >= policy.max_attempts:
                raise GaveUp(attempt, exc) from exc
            log.warning("transient failure (attempt %d/%d): %s", attempt, policy.max_attempts, exc)
            await asyncio.sleep(policy.delay(attempt))
            attempt += 1


def dead_letter(source: SourceMessage, exc: BaseException, consumer: str, producer: str) -> DeadLetterMessage:
    cause = exc.__cause__ if isinstance(exc, GaveUp) and exc.__cause__ else exc
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
            value_b64=base64.b64encode(source.value).decode(),
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

