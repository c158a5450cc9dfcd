"""The notifier's use cases, one function each, over a unit of work (unit_of_work.py) and a `Context`
(the channels, timings, site and clock, built once by service.py):

    accept_event     a `credentials` message -> its notifications recorded (once); those due now
    record_notices   notices -> one notification per active channel (once); those due now
    record_rendered  a `certificates.rendered` message -> the PDF is known; the messages waiting for it
    deliver          one attempt at one notification (claim, send, record), see service.py's docstring
    due              what the retry timer sends again
    scan_expiring    the expiry-reminder scan: a reminder per credential due for one
    mark_dead        a given-up notification's dead letter was acknowledged
    requeue          an operator's second chance for a dead notification
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from ebackpack.domain.notifications import unsubscribe_token
from ebackpack.domain.rules import RuleBook
from ebackpack.streaming.errors import TransientError, describe, is_transient, parse_message
from schemas import CertificateRenderedMessage, DeadLetterMessage, deterministic_id
from schemas.credentials import BACKFILL

from .channels import Email, EmailSender, MoodleSender, PermanentFailure, build_email, channel_unreachable
from .delivery import GAVE_UP, SENDING, SKIPPED, Key, Notification, dead_letter, waits_for_pdf
from .domain import (
    Content,
    InvalidRecipient,
    Notice,
    Recipient,
    Site,
    as_utc,
    compose,
    email_bodies,
    message_id,
    moodle_html,
    notice_from_event,
    recipient_address,
    reminder_id,
)
from .repository import CredentialFacts
from .tuning import Tuning
from .unit_of_work import Conflict, NotifierUnitOfWork

log = logging.getLogger(__name__)

EXPIRY_SCAN_SOURCE = "notifier.expiry-scan"  # the dead letters' `topic` for reminders (no Kafka source)
BACKFILL_SKIPPED = "awarded from the backfill lane (history): no message unless EBACKPACK_NOTIFY_BACKFILL"


@dataclass(frozen=True)
class Senders:
    """The channels this installation sends on (a sender each); None: not configured."""

    email: EmailSender | None = None
    moodle: MoodleSender | None = None

    @property
    def channels(self) -> list[str]:
        senders = (("email", self.email), ("moodle", self.moodle))
        return [name for name, sender in senders if sender is not None]


@dataclass(frozen=True)
class Context:
    """What the handlers need besides the unit of work."""

    senders: Senders
    site: Site
    rules: RuleBook
    mail_from: str
    consumer: str  # the consumer group: the dead letters' `consumer`
    credentials_topic: str  # the dead letters' `topic` for credential events
    reminder_days: int  # the expiry-reminder lead time of rules that set none
    code_secret: Callable[[], bytes]  # asked for only when an e-mail is composed
    tuning: Tuning = field(default_factory=Tuning)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # "New credential" messages for credentials awarded from the backfill lane (history): off by default
    # (the setting `notify_backfill`), so a backfill does not flood learners with old completions.
    notify_backfill: bool = False


@dataclass(frozen=True)
class Outcome:
    key: Key
    state: Literal["sent", "failed", "gave-up", "skipped", "waiting", "busy"]
    dead_letter: DeadLetterMessage | None = None


# ------------------------------------------------------------------------------------------ recording


def accept_event(raw: bytes, uow: NotifierUnitOfWork, ctx: Context) -> list[Key]:
    """Raises InvalidMessage for poison; TransientError when another worker recorded it at the same time."""
    notice = notice_from_event(raw)
    return record_notices([notice], uow, ctx) if notice is not None else []


def record_notices(notices: Iterable[Notice], uow: NotifierUnitOfWork, ctx: Context) -> list[Key]:
    now = ctx.clock()
    due: list[Key] = []
    try:
        with uow:
            for notice in notices:
                for channel in ctx.senders.channels:
                    notification = uow.notifications.get((notice.event_id, channel))
                    if notification is None:
                        notification = Notification.new(notice, channel, now)
                        uow.notifications.add(notification)
                    if notification.is_due(now, ctx.tuning.stale):
                        due.append(notification.key)
            uow.commit()
    except Conflict:
        raise TransientError("another worker recorded the same notification") from None
    return due


def record_rendered(raw: bytes, uow: NotifierUnitOfWork, ctx: Context) -> list[Key]:
    """The renderer stored a certificate's PDF: the notifier records it, and the messages waiting for it
    are due at once (the retry timer would otherwise send them at its next look, `pdf_poll`)."""
    rendered = parse_message(CertificateRenderedMessage, raw).data
    now = ctx.clock()
    try:
        with uow:
            uow.pdfs.add(rendered.credential_id, rendered.rendered_at)
            pending = uow.notifications.pending_for(rendered.credential_id)
            for notification in pending:
                if notification.next_attempt_at is not None and as_utc(notification.next_attempt_at) > now:
                    notification.wait_until(now, now)
                    uow.notifications.save(notification)
            uow.commit()
    except Conflict:
        raise TransientError("another worker recorded the same PDF") from None
    return [notification.key for notification in pending]


def due(uow: NotifierUnitOfWork, ctx: Context, limit: int = 200) -> list[Key]:
    now = ctx.clock()
    with uow:
        return uow.notifications.due(now, now - ctx.tuning.stale, limit)


def scan_expiring(uow: NotifierUnitOfWork, ctx: Context, limit: int = 500) -> list[Key]:
    """Records one reminder per credential due for one; returns those due."""
    if not ctx.senders.channels:
        return []
    notices = expiring(uow, ctx, limit)
    if notices:
        log.info("%d credentials expire soon: reminders recorded", len(notices))
    return record_notices(notices, uow, ctx) if notices else []


def expiring(uow: NotifierUnitOfWork, ctx: Context, limit: int = 500) -> list[Notice]:
    """Credentials that expire within their rule's lead time (`reminder_days`, or the setting
    `expiry_reminder_days`), still valid, and never reminded: one reminder notice each."""
    now = ctx.clock()
    leads = {rule.id: rule.reminder_days or ctx.reminder_days for rule in ctx.rules.rules}
    horizon = now + timedelta(days=max([ctx.reminder_days, *leads.values()]))
    with uow:
        credentials = uow.credentials.expiring(now, horizon, limit)
    notices = []
    for credential in credentials:
        assert credential.valid_until is not None
        valid_until = as_utc(credential.valid_until)
        if valid_until - now > timedelta(days=leads.get(credential.rule_id, ctx.reminder_days)):
            continue
        notices.append(_reminder(credential, valid_until, now, ctx.rules))
    return notices


def _reminder(credential: CredentialFacts, valid_until: datetime, now: datetime, rules: RuleBook) -> Notice:
    rule = next((r for r in rules.rules if r.id == credential.rule_id), None)
    return Notice(
        kind="expiry",
        event_id=reminder_id(credential.credential_id, valid_until),
        learner_id=credential.learner_id,
        credential_id=credential.credential_id,
        verification_code=credential.verification_code,
        at=now,
        achievement=credential.achievement_name,
        course_id=credential.course_id,
        badge=rule.badge if rule else True,
        certificate=rule.certificate if rule else False,
        valid_until=valid_until,
    )


# ------------------------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class _Skip:
    reason: str


@dataclass(frozen=True)
class _GiveUp:
    reason: str  # "<channel>: <error type>: <what>", as `_failed` writes it


@dataclass(frozen=True)
class _Wait:
    until: datetime


@dataclass(frozen=True)
class _Send:
    email: Email | None = None
    moodle: tuple[int, str] | None = None  # (Moodle user id, HTML)


def deliver(key: Key, uow: NotifierUnitOfWork, ctx: Context) -> Outcome:
    """One attempt at one notification (if it is due and no one else has it). The claim (`sending`) is
    committed before anything leaves; "sent" right after the channel accepted."""
    now = ctx.clock()
    with uow:
        notification = uow.notifications.get(key)
        if notification is None or not notification.is_due(now, ctx.tuning.stale):
            return Outcome(key, "busy")
        if notification.state == GAVE_UP:  # its dead letter was not acknowledged yet
            return Outcome(key, "gave-up", _letter(notification, ctx))
        plan = _plan(uow, notification, ctx, now)
        if not isinstance(plan, _Send):
            outcome = _settle(notification, plan, now, ctx)
            uow.notifications.save(notification)
            uow.commit()
            return outcome
        if not uow.notifications.claim(notification, now):
            return Outcome(key, "busy")
        uow.commit()
    attempt = notification.attempts + 1
    try:
        _send(key, plan, lambda: _mark_sent(key, uow, ctx), ctx)
    except Exception as exc:
        return _failed(key, attempt, exc, uow, ctx)
    return Outcome(key, "sent")


def _settle(
    notification: Notification, plan: _Skip | _GiveUp | _Wait, now: datetime, ctx: Context
) -> Outcome:
    """A notification that is not sent now: skipped, given up (invalid input: a dead letter now, not
    after hours of retries) or waiting for its PDF."""
    key = notification.key
    if isinstance(plan, _Skip):
        notification.finish(SKIPPED, plan.reason, now)
        return Outcome(key, "skipped")
    if isinstance(plan, _GiveUp):
        notification.finish(GAVE_UP, plan.reason, now)
        log.warning("notification %s/%s: %s", key[0], key[1], plan.reason)
        return Outcome(key, "gave-up", _letter(notification, ctx))
    notification.wait_until(plan.until, now)
    return Outcome(key, "waiting")


def _plan(
    uow: NotifierUnitOfWork, notification: Notification, ctx: Context, now: datetime
) -> _Skip | _GiveUp | _Wait | _Send:
    channel = notification.channel
    if channel not in ctx.senders.channels:  # the channel was switched off since
        return _Skip(f"the {channel} channel is not configured")
    notice = notification.notice
    if notice.kind == "issued" and notice.origin == BACKFILL and not ctx.notify_backfill:
        return _Skip(BACKFILL_SKIPPED)
    learner = uow.credentials.learner(notice.learner_id)
    if learner is None:
        return _Skip("no learner profile (erased)")
    if not uow.preferences.enabled(learner.id, notice.kind, channel):
        return _Skip(f"{notice.kind} messages by {channel} are turned off by the learner")
    credential = uow.credentials.credential(notice.credential_id)
    if credential is None:
        return _Skip("no such credential")
    if notice.kind == "issued" and credential.status == "revoked":
        return _Skip("revoked before the message went out")
    if notice.kind == "expiry" and credential.status != "issued":
        return _Skip(f"no reminder: the credential is {credential.status}")
    if channel == "email" and not learner.email:
        return _Skip("no e-mail address")
    address = learner.email
    if channel == "email":
        try:
            address = recipient_address(learner.email)
        except InvalidRecipient as exc:
            return _GiveUp(f"email: InvalidRecipient: {exc}")
    pdf_wait = timedelta(seconds=ctx.tuning.pdf_wait)
    if waits_for_pdf(notification, notice, now, pdf_wait) and not uow.pdfs.has(notice.credential_id):
        return _Wait(now + timedelta(seconds=ctx.tuning.pdf_poll))
    recipient = Recipient(learner.id, learner.firstname, learner.lastname, address, learner.lang)
    unsubscribe = None
    if channel == "email":
        token = unsubscribe_token(ctx.code_secret(), learner.id, notice.kind)
        unsubscribe = ctx.site.url(f"/preferences/unsubscribe/{token}")
    content = compose(
        notice,
        recipient,
        ctx.site,
        achievement=notice.achievement or credential.achievement_name,
        course=uow.credentials.course_name(credential.course_id),
        unsubscribe_url=unsubscribe,
        now=now,
    )
    if channel == "email":
        return _Send(email=_email(notification, recipient, content, unsubscribe, ctx.mail_from))
    return _Send(moodle=(learner.id, moodle_html(content)))


def _email(
    notification: Notification,
    recipient: Recipient,
    content: Content,
    unsubscribe: str | None,
    mail_from: str,
) -> Email:
    bodies = email_bodies(content)
    return Email(
        to_name=recipient.name,
        to_address=recipient.email,
        subject=content.subject,
        text=bodies.text,
        html=bodies.html,
        lang=content.lang,
        message_id=message_id(notification.event_id, notification.channel, mail_from),
        unsubscribe_url=unsubscribe,
    )


def _send(key: Key, plan: _Send, accepted: Callable[[], None], ctx: Context) -> None:
    if plan.email is not None:
        assert ctx.senders.email is not None
        try:
            message = build_email(plan.email, ctx.mail_from, ctx.clock())
        except ValueError as exc:  # the same input fails the same way on every attempt
            raise PermanentFailure(f"the e-mail cannot be built: {exc}") from exc
        ctx.senders.email.send(message, accepted)
    else:
        assert plan.moodle is not None and ctx.senders.moodle is not None
        user_id, html = plan.moodle
        ctx.senders.moodle.send(user_id, html, deterministic_id("notification", *key), accepted)


def _mark_sent(key: Key, uow: NotifierUnitOfWork, ctx: Context) -> None:
    """Right after the channel accepted: a few quick tries, this is the window that could duplicate."""
    for remaining in (3, 2, 1, 0):
        try:
            with uow:
                uow.notifications.mark_sent(key, ctx.clock())
                uow.commit()
            return
        except Exception as exc:
            if not remaining or not is_transient(exc):
                raise
            time.sleep(0.2)


def _failed(key: Key, attempt: int, exc: Exception, uow: NotifierUnitOfWork, ctx: Context) -> Outcome:
    now = ctx.clock()
    reason = f"{key[1]}: {type(exc).__name__}: {describe(exc)}"
    permanent = isinstance(exc, PermanentFailure)
    outage = not permanent and channel_unreachable(exc)
    with uow:
        notification = uow.notifications.get(key)
        if notification is None or notification.state != SENDING or notification.attempts != attempt:
            return Outcome(key, "busy")  # sent meanwhile, or taken over by another worker
        delay = ctx.tuning.schedule.next_delay(attempt, permanent=permanent, outage=outage)
        if delay is None:
            why = reason if permanent else f"gave up after {attempt} attempts: {reason}"
            notification.finish(GAVE_UP, why, now)
            uow.notifications.save(notification)
            uow.commit()
            log.warning("notification %s/%s: %s", key[0], key[1], why)
            return Outcome(key, "gave-up", _letter(notification, ctx))
        notification.fail(reason, now + timedelta(seconds=delay), now)
        uow.notifications.save(notification)
        uow.commit()
    log.warning(
        "notification %s/%s failed (attempt %d, next in %.0f s%s): %s",
        key[0],
        key[1],
        attempt,
        delay,
        ", retried while the channel is down" if outage else "",
        reason,
    )
    return Outcome(key, "failed")


# --------------------------------------------------------------------------------------- dead letters


def _letter(notification: Notification, ctx: Context) -> DeadLetterMessage:
    source = EXPIRY_SCAN_SOURCE if notification.kind == "expiry" else ctx.credentials_topic
    return dead_letter(notification, ctx.consumer, source)


def mark_dead(key: Key, uow: NotifierUnitOfWork, ctx: Context) -> None:
    with uow:
        uow.notifications.mark_dead(key, ctx.clock())
        uow.commit()


def requeue(key: Key, uow: NotifierUnitOfWork, ctx: Context) -> bool:
    with uow:
        requeued = uow.notifications.requeue(key, ctx.clock())
        uow.commit()
    return requeued
