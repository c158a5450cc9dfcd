"""What the notifier's handlers read and write, as interfaces (Protocols) and their SQL implementations.

The notifier owns `notifications` and `notifier_pdfs`; it reads the learners' choices (shared with the
backpack) and, read-only, the learner and course profiles and the awards it tells learners about.
The unit tests use the in-memory implementations of tests/unit/notifier_fakes.py.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from sqlalchemy import ColumnElement, and_, exists, or_, select, update
from sqlalchemy.orm import Session

from ebackpack.adapters.persistence.tables import (
    AwardRow,
    Course,
    Learner,
    NotificationRow,
    NotifierPdfRow,
)

from .delivery import DEAD, FAILED, GAVE_UP, PENDING, SENDING, SENT, Key, Notification

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

F = TypeVar("F", bound="DataclassInstance")


@dataclass(frozen=True)
class LearnerFacts:
    id: int
    firstname: str
    lastname: str
    email: str
    lang: str


@dataclass(frozen=True)
class CredentialFacts:
    credential_id: str
    learner_id: int
    course_id: int
    rule_id: str
    status: str  # issued | revoked | expired
    achievement_name: str
    verification_code: str
    valid_until: datetime | None = None


class Notifications(Protocol):
    def get(self, key: Key) -> Notification | None: ...

    def add(self, notification: Notification) -> None: ...

    def save(self, notification: Notification) -> None:
        """Writes back what the caller changed on a notification it got."""

    def claim(self, notification: Notification, now: datetime) -> bool:
        """`sending`, one attempt more, only if its state and attempts are still what was read (a
        compare-and-set: two workers never send the same notification at once)."""

    def mark_sent(self, key: Key, now: datetime) -> None: ...

    def mark_dead(self, key: Key, now: datetime) -> None:
        """gave-up -> dead (its dead letter was acknowledged)."""

    def requeue(self, key: Key, now: datetime) -> bool:
        """dead or gave-up -> pending with no attempts; False when it is neither."""

    def due(self, now: datetime, stale_before: datetime, limit: int) -> list[Key]:
        """For the retry timer: failed ones whose time has come, pending ones that waited (for their PDF)
        or that a crash left behind (created before `stale_before`), `sending` ones updated before
        `stale_before`, and gave-up ones. A fresh pending one is the consumer's, sending it right now."""

    def pending_for(self, credential_id: str) -> list[Notification]: ...


class Pdfs(Protocol):
    """The certificate PDFs the notifier has heard of (`certificates.rendered`)."""

    def has(self, credential_id: str) -> bool: ...

    def add(self, credential_id: str, rendered_at: datetime) -> None:
        """Idempotent: a PDF already known stays as it is."""


class Preferences(Protocol):
    def enabled(self, learner_id: int, kind: str, channel: str) -> bool: ...


class Credentials(Protocol):
    """The learner, course and award facts a message is composed from (other owners' records)."""

    def learner(self, learner_id: int) -> LearnerFacts | None: ...

    def credential(self, credential_id: str) -> CredentialFacts | None: ...

    def course_name(self, course_id: int) -> str | None: ...

    def expiring(self, now: datetime, horizon: datetime, limit: int) -> list[CredentialFacts]:
        """Issued credentials valid until a moment in (now, horizon], never reminded, soonest first."""


# ----------------------------------------------------------------------------------------------- SQL


def from_row(facts: type[F], row: object) -> F:
    """A dataclass read from a row whose columns bear the names of its fields."""
    return facts(**{field.name: getattr(row, field.name) for field in fields(facts)})


def _is(key: Key) -> ColumnElement[bool]:
    return and_(NotificationRow.event_id == key[0], NotificationRow.channel == key[1])


class SqlNotifications:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, key: Key) -> Notification | None:
        row = self.session.get(NotificationRow, key)
        return None if row is None else from_row(Notification, row)

    def add(self, notification: Notification) -> None:
        self.session.add(NotificationRow(**vars(notification)))

    def save(self, notification: Notification) -> None:
        row = self.session.get(NotificationRow, notification.key)  # from the identity map: no query
        assert row is not None, "save() writes back a notification that get() returned"
        for name in ("state", "attempts", "next_attempt_at", "last_error", "sent_at", "updated_at"):
            setattr(row, name, getattr(notification, name))

    def claim(self, notification: Notification, now: datetime) -> bool:
        claimed = self.session.execute(
            update(NotificationRow)
            .where(
                _is(notification.key),
                NotificationRow.state == notification.state,
                NotificationRow.attempts == notification.attempts,
            )
            .values(state=SENDING, attempts=notification.attempts + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return claimed.rowcount == 1  # type: ignore[attr-defined]

    def mark_sent(self, key: Key, now: datetime) -> None:
        self.session.execute(
            update(NotificationRow)
            .where(_is(key), NotificationRow.state != SENT)
            .values(state=SENT, sent_at=now, updated_at=now, last_error=None, next_attempt_at=None)
            .execution_options(synchronize_session=False)
        )

    def mark_dead(self, key: Key, now: datetime) -> None:
        self.session.execute(
            update(NotificationRow)
            .where(_is(key), NotificationRow.state == GAVE_UP)
            .values(state=DEAD, updated_at=now)
            .execution_options(synchronize_session=False)
        )

    def requeue(self, key: Key, now: datetime) -> bool:
        result = self.session.execute(
            update(NotificationRow)
            .where(_is(key), NotificationRow.state.in_([DEAD, GAVE_UP]))
            .values(state=PENDING, attempts=0, next_attempt_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def due(self, now: datetime, stale_before: datetime, limit: int) -> list[Key]:
        rows = self.session.execute(
            select(NotificationRow.event_id, NotificationRow.channel)
            .where(
                or_(
                    and_(NotificationRow.state == FAILED, NotificationRow.next_attempt_at <= now),
                    and_(
                        NotificationRow.state == PENDING,
                        NotificationRow.next_attempt_at <= now,
                        or_(
                            NotificationRow.next_attempt_at > NotificationRow.created_at,
                            NotificationRow.created_at <= stale_before,
                        ),
                    ),
                    and_(NotificationRow.state == SENDING, NotificationRow.updated_at <= stale_before),
                    NotificationRow.state == GAVE_UP,
                )
            )
            .order_by(NotificationRow.next_attempt_at)
            .limit(limit)
        ).all()
        return [(event_id, channel) for event_id, channel in rows]

    def pending_for(self, credential_id: str) -> list[Notification]:
        rows = self.session.scalars(
            select(NotificationRow).where(
                NotificationRow.credential_id == credential_id, NotificationRow.state == PENDING
            )
        )
        return [from_row(Notification, row) for row in rows]


class SqlPdfs:
    def __init__(self, session: Session) -> None:
        self.session = session

    def has(self, credential_id: str) -> bool:
        return self.session.get(NotifierPdfRow, credential_id) is not None

    def add(self, credential_id: str, rendered_at: datetime) -> None:
        if self.session.get(NotifierPdfRow, credential_id) is None:
            self.session.add(NotifierPdfRow(credential_id=credential_id, rendered_at=rendered_at))


class SqlCredentials:
    def __init__(self, session: Session) -> None:
        self.session = session

    def learner(self, learner_id: int) -> LearnerFacts | None:
        row = self.session.get(Learner, learner_id)
        if row is None:
            return None
        return LearnerFacts(row.id, row.firstname, row.lastname, row.email, row.lang)

    def credential(self, credential_id: str) -> CredentialFacts | None:
        award = self.session.get(AwardRow, credential_id)
        return None if award is None else from_row(CredentialFacts, award)

    def course_name(self, course_id: int) -> str | None:
        course = self.session.get(Course, course_id)
        return course.fullname if course else None

    def expiring(self, now: datetime, horizon: datetime, limit: int) -> list[CredentialFacts]:
        reminded = exists().where(
            NotificationRow.credential_id == AwardRow.credential_id, NotificationRow.kind == "expiry"
        )
        awards = self.session.scalars(
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
        return [from_row(CredentialFacts, award) for award in awards]
