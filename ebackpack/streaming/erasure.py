"""The agent every owner of a learner's data runs on `learners.erased` (see services/issuer/privacy.py).

The owner passes its erasure: a blocking function of the `LearnerErased` data that deletes its part and is
idempotent (a redelivered event finds nothing left and changes nothing). It runs in a thread under the
stream policy (`consume`): an outage pauses the consumer on the event, so no erasure is skipped; an event
that breaks its schema becomes a dead letter on the service's dead-letter topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import faust
from faust.types import TopicT

from ebackpack.config import Settings
from schemas import LearnerErased, LearnerErasedMessage

from .app import message_agent, raw_topic
from .errors import parse_message
from .policy import SourceMessage
from .topics import LEARNERS_ERASED


def on_learner_erased(
    app: faust.App,
    settings: Settings,
    erase: Callable[[LearnerErased], object],
    *,
    dlq: TopicT,
    consumer: str,
) -> None:
    """Adds the agent `<consumer>.erasures` to the worker's app, in the worker's consumer group."""

    async def handle(message: SourceMessage) -> None:
        erased = parse_message(LearnerErasedMessage, message.body).data
        await asyncio.to_thread(erase, erased)

    topic = raw_topic(app, settings.topic(LEARNERS_ERASED))
    message_agent(app, topic, f"{consumer}.erasures", handle, dlq=dlq, consumer=consumer)
