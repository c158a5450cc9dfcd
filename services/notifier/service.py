"""The notifier's service layer: credential events and expiry dates in, e-mails and Moodle messages out,
each exactly once as far as the channels allow (docs/notifier.md says where they do not).

One `notifications` row per (event id, channel) is the idempotency record and the retry schedule:

    accept / scan_expiring: the row is created `pending` (a redelivered event finds it: nothing new)
    deliver:  pending|failed (due) --claim--> sending   committed BEFORE the channel is called
              sending --the channel accepted--> sent     committed right after the acceptance
              sending --error--> failed (next_attempt_at = now + backoff) ... --> gave-up --> dead
              anything the learner is not to get --> skipped (turned off, no address, revoked meanwhile)
              what no retry can send (an invalid address) --> gave-up at once, before any attempt

The claim is a compare-and-set (UPDATE ... WHERE state = <what was read> AND attempts = <what was read>),
so two workers (or the consumer and the retry timer) never send the same row at once. A row left in
`sending` longer than `stale_sending` means its worker died between the claim and the record: it is sent
again, because the crash most likely came before or during the send (the channel did not deliver); if
it came in the instant between the channel's acceptance and the record, the learner gets the message
twice, with the same Message-ID.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.keystore import code_secret_for
from ebackpack.adapters.persistence.tables import (
    AwardRow,
    CertificateRow,
    Course,
    Learner,
    NotificationPreferenceRow,
    NotificationRow,
)
from ebackpack.config import Settings
from ebackpack.domain.rules import RuleBook
from ebackpack.streaming.errors import TransientError, describe
from ebackpack.streaming.topics import CREDENTIALS
from schemas import DeadLetter, DeadLetterMessage, deterministic_id

from .channels import (
    Email,
    EmailSender,
    MoodleChannel,
    MoodleSender,
    PermanentFailure,
    SmtpChannel,
    build_email,
    channel_unreachable,
)
from .domain import (
    CHANNELS,
    KINDS,
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
    unsubscribe_token,
)

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, FAILED, SKIPPED, GAVE_UP, DEAD = (
    "pending",
    "sending",
    "sent",
    "failed",
    "skipped",
    "gave-up",
    "dead",
)
EXPIRY_SCAN_SOURCE = "notifier.expiry-scan"  # the dead letters' `topic` for reminders (no Kafka source)
Key = tuple[str, str]  # (event id, channel)


class Tuning(BaseSettings):
    """The notifier's timings, `EBACKPACK_NOTIFY_*` environment variables (the tests shorten them)."""

    model_config = SettingsConfigDict(env_prefix="EBACKPACK_NOTIFY_", env_file=".env", extra="ignore")

    max_attempts: int = 8  # then a dead letter; with the delays below: about 2 hours of retrying
    retry_first_delay: float = 60.0  # seconds before the 2nd attempt; doubles each time
    retry_max_delay: float = 3600.0
    retry_interval: float = 5.0  # seconds between looks for due retries
    scan_interval: float = 3600.0  # seconds between expiry-reminder scans
    send_timeout: float = 30.0  # SMTP socket / Moodle HTTP timeout
    stale_sending: float = 300.0  # a `sending` row older than this: its worker died, send again
    pdf_wait: float = 600.0  # an issued certificate's message waits this long at most for its PDF
    pdf_poll: float = 10.0

    @model_validator(mode="after")
    def _stale_after_timeouts(self) -> Tuning:
        if self.stale_sending <= 2 * self.send_timeout:
            raise ValueError("stale_sending must be well above send_timeout: a slow send is not a crash")
        return self

    def delay(self, attempt: int) -> float:
        return float(min(self.retry_first_delay * 2 ** (attempt - 1), self.retry_max_delay))


def active_channels(settings: Settings) -> list[str]:
    """The channels this installation sends on: e-mail with an SMTP server, Moodle with a token."""
    channels = []
    if settings.smtp_host:
        channels.append("email")
    if settings.notify_moodle_messages and settings.moodle_ws_token is not None:
        channels.append("moodle")
    return channels


class PreferenceStore:
    """The learner's choices: which kinds of message on which channel. No row = on."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def choices(self, learner_id: int) -> dict[tuple[str, str], bool]:
        choices: dict[tuple[str, str], bool] = {(k, c): True for k in KINDS for c in CHANNELS}
        rows = self.session.scalars(
            select(NotificationPreferenceRow).where(NotificationPreferenceRow.learner_id == learner_id)
        )
        for row in rows:
            choices[(row.kind, row.channel)] = row.enabled
        return choices

    def enabled(self, learner_id: int, kind: str, channel: str) -> bool:
        row = self.session.get(NotificationPreferenceRow, (learner_id, kind, channel))
        return True if row is None else row.enabled

    def set(self, learner_id: int, kind: str, channel: str, enabled: bool) -> None:
        if kind not in KINDS or channel not in CHANNELS:
            raise ValueError(f"no such kind of message or channel: {kind}/{channel}")
        self.session.merge(
            NotificationPreferenceRow(
                learner_id=learner_id,
                kind=kind,
                channel=channel,
                enabled=enabled,
                updated_at=datetime.now(UTC),
            )
        )


@dataclass(frozen=True)
class Outcome:
    key: Key
    state: Literal["sent", "failed", "gave-up", "skipped", "waiting", "busy"]
    dead_letter: DeadLetterMessage | None = None


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


class NotifierService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        rules: RuleBook,
        settings: Settings,
        tuning: Tuning | None = None,
        *,
        email: EmailSender | None = None,
        moodle: MoodleSender | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.sessions = sessions
        self.rules = rules
        self.settings = settings
        self.tuning = tuning or Tuning()
        self.clock = clock or (lambda: datetime.now(UTC))
        active = active_channels(settings)
        timeout = self.tuning.send_timeout
        self.email: EmailSender | None = None
        self.moodle: MoodleSender | None = None
        if "email" in active:
            self.email = email or SmtpChannel.from_settings(settings, timeout)
        if "moodle" in active:
            self.moodle = moodle or MoodleChannel.from_settings(settings, timeout)
        self.site = Site(
            issuer_name=rules.issuer.name,
            issuer_email=rules.issuer.email,
            public_url=settings.public_url,
            moodle_url=settings.moodle_url,
        )
        self.consumer = settings.notify_group

    @cached_property
    def code_secret(self) -> bytes:
        return code_secret_for(self.settings)

    @property
    def channels(self) -> list[str]:
        senders = (("email", self.email), ("moodle", self.moodle))
        return [name for name, sender in senders if sender is not None]

    # ------------------------------------------------------------------------------------ recording

    def accept(self, raw: bytes) -> list[Key]:
        """A `credentials` message: its notifications recorded (once), and those due now returned.

        Raises InvalidMessage for poison; TransientError when another worker recorded it at the same time."""
        notice = notice_from_event(raw)
        return self.record([notice]) if notice is not None else []

    def record(self, notices: Iterable[Notice]) -> list[Key]:
        now = self.clock()
        due: list[Key] = []
        try:
            with self.sessions.begin() as session:
                for notice in notices:
                    for channel in self.channels:
                        row = session.get(NotificationRow, (notice.event_id, channel))
                        if row is None:
                            row = NotificationRow(
                                event_id=notice.event_id,
                                channel=channel,
                                kind=notice.kind,
                                learner_id=notice.learner_id,
                                credential_id=notice.credential_id,
                                state=PENDING,
                                attempts=0,
                                next_attempt_at=now,
                                created_at=now,
                                updated_at=now,
                                payload=notice.model_dump_json(),
                            )
                            session.add(row)
                        if self._due(row, now):
                            due.append((row.event_id, row.channel))
        except IntegrityError:
            raise TransientError("another worker recorded the same notification") from None
        return due

    def _due(self, row: NotificationRow, now: datetime) -> bool:
        if row.state in (PENDING, FAILED):
            return row.next_attempt_at is None or as_utc(row.next_attempt_at) <= now
        if row.state == SENDING:
            return as_utc(row.updated_at) <= now - timedelta(seconds=self.tuning.stale_sending)
        return row.state == GAVE_UP

    def due(self, limit: int = 200) -> list[Key]:
        """Rows for the retry timer: failed ones whose time has come, pending ones that waited for their
        PDF or that a crash left behind before their first attempt, stale `sending` ones, and dead letters
        not yet published. A fresh pending row is the consumer's, which is sending it right now."""
        now = self.clock()
        stale = now - timedelta(seconds=self.tuning.stale_sending)
        with self.sessions() as session:
            rows = session.execute(
                select(NotificationRow.event_id, NotificationRow.channel)
                .where(
                    or_(
                        and_(NotificationRow.state == FAILED, NotificationRow.next_attempt_at <= now),
                        and_(
                            NotificationRow.state == PENDING,
                            NotificationRow.next_attempt_at <= now,
                            or_(
                                NotificationRow.next_attempt_at > NotificationRow.created_at,
                                NotificationRow.created_at <= stale,
                            ),
                        ),
                        and_(NotificationRow.state == SENDING, NotificationRow.updated_at <= stale),
                        NotificationRow.state == GAVE_UP,
                    )
                )
                .order_by(NotificationRow.next_attempt_at)
                .limit(limit)
            ).all()
        return [(event_id, channel) for event_id, channel in rows]

    def scan_expiring(self, limit: int = 500) -> list[Key]:
        """The expiry-reminder scan: records one reminder per credential due for one; returns those due."""
        if not self.channels:
            return []
        notices = self.expiring(limit)
        if notices:
            log.info("%d credentials expire soon: reminders recorded", len(notices))
        return self.record(notices) if notices else []

    def expiring(self, limit: int = 500) -> list[Notice]:
        """Credentials that expire within their rule's lead time (`reminder_days`, or the setting
        `expiry_reminder_days`), still valid, and never reminded: one reminder notice each."""
        now = self.clock()
        default = self.settings.expiry_reminder_days
        leads = {rule.id: rule.reminder_days or default for rule in self.rules.rules}
        horizon = now + timedelta(days=max([self.settings.expiry_reminder_days, *leads.values()]))
        reminded = exists().where(
            NotificationRow.credential_id == AwardRow.credential_id, NotificationRow.kind == "expiry"
        )
        with self.sessions() as session:
            awards = session.scalars(
                select(AwardRow)
                .where(
                    AwardRow.status == "issued",
                    AwardRow.valid_until.is_not(None),
                    AwardRow.valid_until > now,
                    AwardRow.valid_until <= horizon,
                    ~reminded,
                )
                .order_by(AwardRow.valid_until)
                .limit(limit)
            ).all()
        notices = []
        for award in awards:
            assert award.valid_until is not None
            valid_until = as_utc(award.valid_until)
            lead = leads.get(award.rule_id, self.settings.expiry_reminder_days)
            if valid_until - now > timedelta(days=lead):
                continue
            rule = next((r for r in self.rules.rules if r.id == award.rule_id), None)
            notices.append(
                Notice(
                    kind="expiry",
                    event_id=reminder_id(award.credential_id, valid_until),
                    learner_id=award.learner_id,
                    credential_id=award.credential_id,
                    verification_code=award.verification_code,
                    at=now,
                    achievement=award.achievement_name,
                    course_id=award.course_id,
                    badge=rule.badge if rule else True,
                    certificate=rule.certificate if rule else False,
                    valid_until=valid_until,
                )
            )
        return notices

    # ------------------------------------------------------------------------------------- delivery

    def deliver(self, key: Key) -> Outcome:
        """One attempt at one notification (if it is due and no one else has it)."""
        now = self.clock()
        with self.sessions.begin() as session:
            row = session.get(NotificationRow, key)
            if row is None or not self._due(row, now):
                return Outcome(key, "busy")
            if row.state == GAVE_UP:
                return Outcome(key, "gave-up", self.dead_letter(row))
            if row.channel not in self.channels:  # the channel was switched off since
                self._finish(row, SKIPPED, now, f"the {row.channel} channel is not configured")
                return Outcome(key, "skipped")
            plan = self._plan(session, row, Notice.model_validate_json(row.payload), now)
            if isinstance(plan, _Skip):
                self._finish(row, SKIPPED, now, plan.reason)
                return Outcome(key, "skipped")
            if isinstance(plan, _GiveUp):  # invalid input: a dead letter now, not after hours of retries
                self._finish(row, GAVE_UP, now, plan.reason)
                log.warning("notification %s/%s: %s", key[0], key[1], plan.reason)
                return Outcome(key, "gave-up", self.dead_letter(row))
            if isinstance(plan, _Wait):
                row.next_attempt_at, row.updated_at = plan.until, now
                return Outcome(key, "waiting")
            attempt = row.attempts + 1
            claimed = session.execute(
                update(NotificationRow)
                .where(
                    NotificationRow.event_id == row.event_id,
                    NotificationRow.channel == row.channel,
                    NotificationRow.state == row.state,
                    NotificationRow.attempts == row.attempts,
                )
                .values(state=SENDING, attempts=attempt, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return Outcome(key, "busy")
        # Committed: `sending`, before anything leaves.
        try:
            self._send(key, plan, lambda: self._mark_sent(key, attempt))
        except Exception as exc:
            return self._failed(key, attempt, exc)
        return Outcome(key, "sent")

    def _plan(
        self, session: Session, row: NotificationRow, notice: Notice, now: datetime
    ) -> _Skip | _GiveUp | _Wait | _Send:
        learner = session.get(Learner, notice.learner_id)
        if learner is None:
            return _Skip("no learner profile (erased)")
        if not PreferenceStore(session).enabled(learner.id, notice.kind, row.channel):
            return _Skip(f"{notice.kind} messages by {row.channel} are turned off by the learner")
        award = session.get(AwardRow, notice.credential_id)
        if award is None:
            return _Skip("no such credential")
        if notice.kind == "issued" and award.status == "revoked":
            return _Skip("revoked before the message went out")
        if notice.kind == "expiry" and award.status != "issued":
            return _Skip(f"no reminder: the credential is {award.status}")
        if row.channel == "email" and not learner.email:
            return _Skip("no e-mail address")
        address = learner.email
        if row.channel == "email":
            try:
                address = recipient_address(learner.email)
            except InvalidRecipient as exc:
                return _GiveUp(f"email: InvalidRecipient: {exc}")
        if notice.kind == "issued" and notice.certificate and self._waits_for_pdf(session, row, notice, now):
            return _Wait(now + timedelta(seconds=self.tuning.pdf_poll))
        course = session.get(Course, award.course_id)
        recipient = Recipient(learner.id, learner.firstname, learner.lastname, address, learner.lang)
        unsubscribe = None
        if row.channel == "email":
            token = unsubscribe_token(self.code_secret, learner.id, notice.kind)
            unsubscribe = self.site.url(f"/preferences/unsubscribe/{token}")
        content = compose(
            notice,
            recipient,
            self.site,
            achievement=notice.achievement or award.achievement_name,
            course=course.fullname if course else None,
            unsubscribe_url=unsubscribe,
            now=now,
        )
        if row.channel == "email":
            return _Send(email=self._email(row, recipient, content, unsubscribe))
        return _Send(moodle=(learner.id, moodle_html(content)))

    def _waits_for_pdf(self, session: Session, row: NotificationRow, notice: Notice, now: datetime) -> bool:
        """The message links to the certificate's PDF: it waits for the renderer (at most `pdf_wait`
        seconds after the event arrived), so that the link works when the learner clicks it."""
        if now - as_utc(row.created_at) >= timedelta(seconds=self.tuning.pdf_wait):
            return False
        stored = session.scalar(
            select(CertificateRow.id).where(CertificateRow.credential_id == notice.credential_id).limit(1)
        )
        return stored is None

    def _email(
        self, row: NotificationRow, recipient: Recipient, content: Content, unsubscribe: str | None
    ) -> Email:
        bodies = email_bodies(content)
        return Email(
            to_name=recipient.name,
            to_address=recipient.email,
            subject=content.subject,
            text=bodies.text,
            html=bodies.html,
            lang=content.lang,
            message_id=message_id(row.event_id, row.channel, self.settings.mail_from),
            unsubscribe_url=unsubscribe,
        )

    def _send(self, key: Key, plan: _Send, accepted: Callable[[], None]) -> None:
        if plan.email is not None:
            assert self.email is not None
            try:
                message = build_email(plan.email, self.settings.mail_from, self.clock())
            except ValueError as exc:  # the same input fails the same way on every attempt
                raise PermanentFailure(f"the e-mail cannot be built: {exc}") from exc
            self.email.send(message, accepted)
        else:
            assert plan.moodle is not None and self.moodle is not None
            user_id, html = plan.moodle
            self.moodle.send(user_id, html, deterministic_id("notification", *key), accepted)

    def _mark_sent(self, key: Key, attempt: int) -> None:
        """Right after the channel accepted: a few quick tries, this is the window that could duplicate."""
        for remaining in (3, 2, 1, 0):
            try:
                with self.sessions.begin() as session:
                    session.execute(
                        update(NotificationRow)
                        .where(
                            NotificationRow.event_id == key[0],
                            NotificationRow.channel == key[1],
                            NotificationRow.state != SENT,
                        )
                        .values(
                            state=SENT,
                            sent_at=self.clock(),
                            updated_at=self.clock(),
                            last_error=None,
                            next_attempt_at=None,
                        )
                        .execution_options(synchronize_session=False)
                    )
                return
            except OperationalError:
                if not remaining:
                    raise
                time.sleep(0.2)

    def _failed(self, key: Key, attempt: int, exc: Exception) -> Outcome:
        now = self.clock()
        reason = f"{key[1]}: {type(exc).__name__}: {describe(exc)}"
        permanent = isinstance(exc, PermanentFailure)
        # While the channel is down for everyone, attempts go on (at the longest delay) for as long as it
        # is down: an outage is never turned into dead letters. Attempts still count, so a message that
        # then fails by itself gives up sooner.
        outage = not permanent and channel_unreachable(exc)
        with self.sessions.begin() as session:
            row = session.get(NotificationRow, key)
            if row is None or row.state != SENDING or row.attempts != attempt:
                return Outcome(key, "busy")  # sent meanwhile, or taken over by another worker
            if permanent or (attempt >= self.tuning.max_attempts and not outage):
                row.state, row.next_attempt_at, row.updated_at = GAVE_UP, None, now
                row.last_error = reason if permanent else f"gave up after {attempt} attempts: {reason}"
                log.warning("notification %s/%s: %s", key[0], key[1], row.last_error)
                return Outcome(key, "gave-up", self.dead_letter(row))
            delay = self.tuning.delay(attempt)
            row.state, row.last_error, row.updated_at = FAILED, reason, now
            row.next_attempt_at = now + timedelta(seconds=delay)
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

    @staticmethod
    def _finish(row: NotificationRow, state: str, now: datetime, reason: str) -> None:
        row.state, row.last_error, row.next_attempt_at, row.updated_at = state, reason, None, now

    # ---------------------------------------------------------------------------------- dead letters

    def dead_letter(self, row: NotificationRow) -> DeadLetterMessage:
        """What goes to the notifier's dead-letter topic for a notification it gave up on: the reason and
        the notice (value), keyed by learner. There is no source offset (-1): the notification outlives
        its Kafka message, and a reminder never had one. `requeue()` gives it another round from its row."""
        # last_error reads "[gave up after N attempts: ]<channel>: <ExceptionType>: <what happened>"
        error_type = (row.last_error or "").partition(f"{row.channel}: ")[2].split(":", 1)[0]
        return DeadLetterMessage.build(
            id=deterministic_id("dead-letter", self.consumer, "notification", row.event_id, row.channel),
            source=f"ebackpack/{self.consumer}",
            subject=f"notification/{row.event_id}/{row.channel}",
            data=DeadLetter(
                reason=row.last_error or "gave up",
                error_type=error_type or "NotificationFailed",
                consumer=self.consumer,
                topic=self.settings.topic(CREDENTIALS) if row.kind != "expiry" else EXPIRY_SCAN_SOURCE,
                partition=-1,
                offset=-1,
                key_b64=base64.b64encode(str(row.learner_id).encode()).decode(),
                value_b64=base64.b64encode(row.payload.encode()).decode(),
            ),
        )

    def mark_dead(self, key: Key) -> None:
        """The dead letter was acknowledged by the broker."""
        with self.sessions.begin() as session:
            session.execute(
                update(NotificationRow)
                .where(
                    NotificationRow.event_id == key[0],
                    NotificationRow.channel == key[1],
                    NotificationRow.state == GAVE_UP,
                )
                .values(state=DEAD, updated_at=self.clock())
                .execution_options(synchronize_session=False)
            )

    def requeue(self, key: Key) -> bool:
        """An operator's second chance for a dead notification (after fixing the cause)."""
        with self.sessions.begin() as session:
            result = session.execute(
                update(NotificationRow)
                .where(
                    NotificationRow.event_id == key[0],
                    NotificationRow.channel == key[1],
                    NotificationRow.state.in_([DEAD, GAVE_UP]),
                )
                .values(state=PENDING, attempts=0, next_attempt_at=self.clock(), updated_at=self.clock())
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]
