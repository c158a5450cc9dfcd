"""The notifier's delivery rules, pure: a notification's states, when it is due, how long a failed one
waits for its next attempt, when an issued message waits for its certificate's PDF, and the dead letter
of one given up on. No database, no network: the handlers apply these to what the unit of work holds.

    pending|failed (due) --claim--> sending --accepted--> sent
                                    sending --error--> failed (RetrySchedule) ... --> gave-up --> dead
    anything the learner is not to get --> skipped; what no retry can send --> gave-up at once
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas import DeadLetter, DeadLetterMessage, deterministic_id

from .domain import Notice, as_utc

PENDING, SENDING, SENT, FAILED, SKIPPED, GAVE_UP, DEAD = (
    "pending",
    "sending",
    "sent",
    "failed",
    "skipped",
    "gave-up",
    "dead",
)
Key = tuple[str, str]  # (event id, channel)


@dataclass
class Notification:
    """One message to one learner on one channel: its idempotency record and its retry schedule."""

    event_id: str
    channel: str
    kind: str
    learner_id: int
    credential_id: str
    payload: str  # the Notice as JSON: a retry needs no Kafka message
    created_at: datetime
    updated_at: datetime
    state: str = PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None

    @classmethod
    def new(cls, notice: Notice, channel: str, now: datetime) -> Notification:
        return cls(
            event_id=notice.event_id,
            channel=channel,
            kind=notice.kind,
            learner_id=notice.learner_id,
            credential_id=notice.credential_id,
            payload=notice.model_dump_json(),
            created_at=now,
            updated_at=now,
            next_attempt_at=now,
        )

    @property
    def key(self) -> Key:
        return (self.event_id, self.channel)

    @property
    def notice(self) -> Notice:
        return Notice.model_validate_json(self.payload)

    def is_due(self, now: datetime, stale_sending: timedelta) -> bool:
        """Worth an attempt now: pending or failed and its time has come, `sending` for so long that its
        worker must have died, or given up with its dead letter not yet published."""
        if self.state in (PENDING, FAILED):
            return self.next_attempt_at is None or as_utc(self.next_attempt_at) <= now
        if self.state == SENDING:
            return as_utc(self.updated_at) <= now - stale_sending
        return self.state == GAVE_UP

    def finish(self, state: str, reason: str, now: datetime) -> None:
        """Skipped or given up: no further attempt is scheduled."""
        self.state, self.last_error, self.next_attempt_at, self.updated_at = state, reason, None, now

    def wait_until(self, until: datetime, now: datetime) -> None:
        self.next_attempt_at, self.updated_at = until, now

    def fail(self, reason: str, next_attempt_at: datetime, now: datetime) -> None:
        self.state, self.last_error, self.next_attempt_at, self.updated_at = (
            FAILED,
            reason,
            next_attempt_at,
            now,
        )


@dataclass(frozen=True)
class RetrySchedule:
    """Per-notification delivery attempts over hours: the first retry after `first_delay` seconds, each
    delay doubled up to `max_delay`, a dead letter after `max_attempts` (defaults: about 2 hours).

    A channel down for everyone (an outage) is retried at the longest delay for as long as it lasts: an
    outage never becomes dead letters. Attempts still count, so a message that then fails by itself
    gives up sooner. A permanent refusal gives up at once."""

    max_attempts: int = 8
    first_delay: float = 60.0
    max_delay: float = 3600.0

    def delay(self, attempt: int) -> float:
        """Seconds between failed attempt `attempt` (1, 2, ...) and the next one."""
        return float(min(self.first_delay * 2 ** (attempt - 1), self.max_delay))

    def next_delay(self, attempt: int, *, permanent: bool, outage: bool) -> float | None:
        """After failed attempt `attempt`: seconds until the next one, or None to give up."""
        if permanent or (attempt >= self.max_attempts and not outage):
            return None
        return self.delay(attempt)


def waits_for_pdf(notification: Notification, notice: Notice, now: datetime, pdf_wait: timedelta) -> bool:
    """Whether this message may have to wait for its certificate's PDF: an issued certificate's message
    links to the PDF, so it waits for the renderer (at most `pdf_wait` after the event arrived) and the
    link works when the learner clicks it. The caller then asks whether the PDF is known."""
    if notice.kind != "issued" or not notice.certificate:
        return False
    return now - as_utc(notification.created_at) < pdf_wait


def dead_letter(notification: Notification, consumer: str, source_topic: str) -> DeadLetterMessage:
    """The dead letter (schemas' `DeadLetter`) of a notification given up on: the reason and the notice
    (value), keyed by learner. Its identity is the notification's, not a source offset (-1): the
    notification outlives its Kafka message, and a reminder never had one."""
    # last_error reads "[gave up after N attempts: ]<channel>: <ExceptionType>: <what happened>"
    reason = notification.last_error or "gave up"
    error_type = reason.partition(f"{notification.channel}: ")[2].split(":", 1)[0]
    return DeadLetterMessage.build(
        id=deterministic_id(
            "dead-letter", consumer, "notification", notification.event_id, notification.channel
        ),
        source=f"ebackpack/{consumer}",
        subject=f"notification/{notification.event_id}/{notification.channel}",
        data=DeadLetter(
            reason=reason,
            error_type=error_type or "NotificationFailed",
            consumer=consumer,
            topic=source_topic,
            partition=-1,
            offset=-1,
            key_b64=base64.b64encode(str(notification.learner_id).encode()).decode(),
            value_b64=base64.b64encode(notification.payload.encode()).decode(),
        ),
    )
