"""The notifier's entry point: faust agents on `credentials` and on `certificates.rendered` (the PDFs its
certificate messages wait for) in its own consumer group (`settings.notify_group`), a timer that sends
what is due again (failed sends whose backoff has passed, messages waiting for their PDF, attempts a
crashed worker left behind), and a timer that scans for credentials about to expire (recertification
reminders)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
from collections.abc import Callable, Iterable

import faust
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from ebackpack.bootstrap import build
from ebackpack.config import Settings, get_settings
from ebackpack.streaming.app import make_app, message_agent, raw_topic, send_and_wait
from ebackpack.streaming.erasure import on_learner_erased
from ebackpack.streaming.policy import RetryPolicy, SourceMessage, with_retries
from ebackpack.streaming.topics import CREDENTIALS, RENDERED

from .erasure import NotificationErasure
from .service import Key, NotifierService, Tuning

log = logging.getLogger(__name__)
DEAD_LETTERS = "credentials.notifier.dlq"


def ensure_dead_letter_topic(settings: Settings) -> None:
    """The notifier's dead-letter topic, one partition (idempotent; `ebackpack prepare` may create it too)."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        client_id="ebackpack-notifier-admin",
        request_timeout_ms=10_000,
    )
    try:
        name = settings.topic(DEAD_LETTERS)
        if name not in set(admin.list_topics()):
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(name, 1, 1)])
    finally:
        admin.close()


def create_app(settings: Settings | None = None, tuning: Tuning | None = None) -> faust.App:
    settings = settings or get_settings()
    tuning = tuning or Tuning()
    app = make_app(settings.notify_group, settings)
    service = NotifierService.from_platform(build(settings), tuning)
    if not service.channels:
        log.warning(
            "no channel configured (EBACKPACK_SMTP_HOST, EBACKPACK_MOODLE_WS_TOKEN): "
            "the notifier reads the events and sends nothing"
        )
    ensure_dead_letter_topic(settings)
    credentials = raw_topic(app, settings.topic(CREDENTIALS))
    rendered = raw_topic(app, settings.topic(RENDERED))
    dead_letters = raw_topic(app, settings.topic(DEAD_LETTERS))
    erase = NotificationErasure(service.sessions)  # an erased learner's messages and preferences
    on_learner_erased(app, settings, erase, dlq=dead_letters, consumer=settings.notify_group)
    policy = RetryPolicy()

    in_flight: set[Key] = set()  # keys the consumer or a timer is delivering right now

    async def deliver(keys: Iterable[Key]) -> None:
        """One attempt each, in turn; a failure is scheduled in its row, never retried here.

        A key already in flight is skipped: the retry timer would otherwise pick up a row that has given
        up while its dead letter awaits the broker's ack, and publish the letter a second time.
        """
        for key in keys:
            if key in in_flight:
                continue
            in_flight.add(key)
            try:
                await deliver_one(key)
            finally:
                in_flight.discard(key)

    async def deliver_one(key: Key) -> None:
        outcome = await asyncio.to_thread(service.deliver, key)
        if outcome.dead_letter is not None:
            letter = outcome.dead_letter
            learner = base64.b64decode(letter.data.key_b64) if letter.data.key_b64 else None
            # Acknowledged before the row says `dead`: a crash in between publishes it again (same id).
            await with_retries(
                functools.partial(send_and_wait, dead_letters, learner, letter.to_bytes()), policy
            )
            await asyncio.to_thread(service.mark_dead, key)

    async def handle(message: SourceMessage) -> None:
        await deliver(await asyncio.to_thread(service.accept, message.body))

    async def handle_rendered(message: SourceMessage) -> None:
        await deliver(await asyncio.to_thread(service.rendered, message.body))

    group = settings.notify_group
    for topic, name, handler in (
        (credentials, "credentials", handle),
        (rendered, "rendered", handle_rendered),
    ):
        message_agent(app, topic, f"{group}.{name}", handler, dlq=dead_letters, consumer=group, policy=policy)

    async def guarded(what: str, step: Callable[[], list[Key]]) -> None:
        """A timer's round: an error is logged and the next round tries again (the rows keep the state)."""
        try:
            await deliver(await asyncio.to_thread(step))
        except Exception:
            log.exception("notifier %s failed; trying again next round", what)

    @app.timer(tuning.retry_interval)
    async def retry_due() -> None:
        await guarded("retry", service.due)

    @app.timer(tuning.scan_interval)
    async def remind_expiring() -> None:
        await guarded("expiry scan", service.scan_expiring)

    @app.task
    async def first_scan() -> None:
        """Timers first fire one interval after the start: a worker restarted more often than hourly
        would otherwise never scan."""
        await asyncio.sleep(min(10.0, tuning.scan_interval))
        await guarded("expiry scan", service.scan_expiring)

    return app
