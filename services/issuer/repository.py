"""The issuer's repositories: what its handlers read and write, each as an abstract interface and its SQL
adapter. A unit of work (unit_of_work.py) hands them out over one transaction; the unit tests' fakes
implement the same interfaces in memory.

The rows are the ORM tables' own classes: a handler changes an award's status on the row, and the SQL
unit of work saves the change at commit.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, or_, select, tuple_, update
from sqlalchemy.orm import Session

from ebackpack.adapters.credential_store import CredentialStore
from ebackpack.adapters.persistence.profiles import merge_profiles
from ebackpack.adapters.persistence.tables import (
    AwardRow,
    Course,
    Learner,
    OutboxRow,
    ParkedMessageRow,
    SignedCredentialRow,
)
from schemas.moodle import Profiles

from .domain import Award
from .privacy import erase_learner


class Awards(abc.ABC):
    """Awards and their signed credentials."""

    @abc.abstractmethod
    def existing(self, awards: Sequence[Award]) -> dict[str, str]:
        """The awards saved already: their id -> the id they were saved under. By id, and by learner and
        rule, which finds awards saved under an earlier way of deriving ids (same learner, same rule)."""

    @abc.abstractmethod
    def add(self, award: AwardRow, signed: Sequence[SignedCredentialRow]) -> None: ...

    @abc.abstractmethod
    def find(self, code_or_id: str) -> AwardRow | None:
        """By credential id or verification code (as printed or typed)."""

    @abc.abstractmethod
    def signed_document(self, credential_id: str, fmt: str) -> str | None: ...

    @abc.abstractmethod
    def not_revoked(
        self, rule_ids: Collection[str], course_id: int | None = None, rule_id: str | None = None
    ) -> list[AwardRow]:
        """Awards of these rules that are not revoked, of one course or one rule."""

    @abc.abstractmethod
    def due_to_expire(self, now: datetime, limit: int) -> list[AwardRow]:
        """Issued awards whose validity ended by `now`."""


class StatusSlots(abc.ABC):
    @abc.abstractmethod
    def allocate(self, credential_ids: list[str]) -> dict[str, tuple[int, int]]:
        """A free (status list, index) per credential, none taken by an award saved or chosen before."""


class ProfileViews(abc.ABC):
    """The issuer's view of Moodle's learners and courses (fed by the compacted profile topics)."""

    @abc.abstractmethod
    def learners(self, ids: set[int]) -> dict[int, Learner]: ...

    @abc.abstractmethod
    def courses(self, ids: set[int]) -> dict[int, Course]: ...

    @abc.abstractmethod
    def learner(self, learner_id: int) -> Learner | None: ...

    @abc.abstractmethod
    def course(self, course_id: int) -> Course | None: ...

    @abc.abstractmethod
    def save(self, profiles: Profiles) -> None:
        """Insert or update (a name change applies to certificates rendered later)."""


class Outbox(abc.ABC):
    """Events saved with the change they announce; sent (and marked) after the broker acknowledges."""

    @abc.abstractmethod
    def add(self, rows: Sequence[OutboxRow]) -> None: ...

    @abc.abstractmethod
    def pending_of(self, credential_ids: Sequence[str]) -> list[OutboxRow]:
        """These credentials' unsent events, oldest first."""

    @abc.abstractmethod
    def pending(self, older_than: datetime, limit: int = 500) -> list[OutboxRow]:
        """Unsent events saved before `older_than`, oldest first."""

    @abc.abstractmethod
    def mark_sent(self, event_ids: Sequence[str]) -> None: ...


class ParkedMessages(abc.ABC):
    """Completions waiting for a profile, per learner in arrival order."""

    @abc.abstractmethod
    def waiting_learners(self, ids: set[int]) -> set[int]:
        """Of these learners, those who have parked messages: their later messages queue behind them."""

    @abc.abstractmethod
    def park(self, row: ParkedMessageRow) -> bool:
        """False when this learner's event is parked already (a redelivery)."""

    @abc.abstractmethod
    def ready_learners(
        self, learner_ids: set[int] | None = None, course_id: int | None = None, limit: int = 500
    ) -> list[int]:
        """Learners with parked messages (all, these, or those waiting on this course) whose profile is
        there now, longest waiting first: without it nothing of theirs can be issued."""

    @abc.abstractmethod
    def of_learner(self, learner_id: int) -> list[ParkedMessageRow]:
        """A learner's parked messages in order."""

    @abc.abstractmethod
    def remove(self, row: ParkedMessageRow) -> None: ...

    @abc.abstractmethod
    def count(self) -> int: ...

    @abc.abstractmethod
    def drop(self, learner_id: int) -> int:
        """The learner's erasure: what they were waiting for will never be issued."""


class Erasures(abc.ABC):
    """Right to erasure: the issuer's part, as privacy.py says."""

    @abc.abstractmethod
    def erase(
        self, learner_id: int, *, topic: Callable[[str], str], source: str, now: datetime
    ) -> list[OutboxRow]:
        """Erases the learner's data the issuer owns and saves the erasure events in the outbox; returns
        the events saved (none when they were saved before)."""


# --- SQL ------------------------------------------------------------------------------------------------


class SqlAwards(Awards):
    def __init__(self, session: Session, store: CredentialStore):
        self.session, self.store = session, store

    def existing(self, awards: Sequence[Award]) -> dict[str, str]:
        if not awards:
            return {}
        ids = [a.credential_id for a in awards]
        pairs = {(a.learner_id, a.rule.id): a.credential_id for a in awards}
        query = select(AwardRow.credential_id, AwardRow.learner_id, AwardRow.rule_id).where(
            or_(
                AwardRow.credential_id.in_(ids),
                tuple_(AwardRow.learner_id, AwardRow.rule_id).in_(list(pairs)),
            )
        )
        found: dict[str, str] = {}
        for stored, learner_id, rule_id in self.session.execute(query):
            found[stored if stored in ids else pairs[(learner_id, rule_id)]] = stored
        return found

    def add(self, award: AwardRow, signed: Sequence[SignedCredentialRow]) -> None:
        self.session.add_all([award, *signed])

    def find(self, code_or_id: str) -> AwardRow | None:
        return self.store.find(code_or_id)

    def signed_document(self, credential_id: str, fmt: str) -> str | None:
        signed = self.store.signed(credential_id, fmt)
        return signed.document if signed else None

    def not_revoked(
        self, rule_ids: Collection[str], course_id: int | None = None, rule_id: str | None = None
    ) -> list[AwardRow]:
        query = select(AwardRow).where(AwardRow.status != "revoked", AwardRow.rule_id.in_(list(rule_ids)))
        if course_id is not None:
            query = query.where(AwardRow.course_id == course_id)
        if rule_id is not None:
            query = query.where(AwardRow.rule_id == rule_id)
        return list(self.session.scalars(query))

    def due_to_expire(self, now: datetime, limit: int) -> list[AwardRow]:
        query = select(AwardRow).where(AwardRow.status == "issued", AwardRow.valid_until <= now)
        return list(self.session.scalars(query.limit(limit)))


class SqlStatusSlots(StatusSlots):
    def __init__(self, store: CredentialStore):
        self.store = store

    def allocate(self, credential_ids: list[str]) -> dict[str, tuple[int, int]]:
        return self.store.allocate_status_entries(credential_ids)


class SqlProfileViews(ProfileViews):
    def __init__(self, session: Session):
        self.session = session

    def learners(self, ids: set[int]) -> dict[int, Learner]:
        return {row.id: row for row in self.session.scalars(select(Learner).where(Learner.id.in_(ids)))}

    def courses(self, ids: set[int]) -> dict[int, Course]:
        return {row.id: row for row in self.session.scalars(select(Course).where(Course.id.in_(ids)))}

    def learner(self, learner_id: int) -> Learner | None:
        return self.session.get(Learner, learner_id)

    def course(self, course_id: int) -> Course | None:
        return self.session.get(Course, course_id)

    def save(self, profiles: Profiles) -> None:
        merge_profiles(self.session, profiles)


class SqlOutbox(Outbox):
    def __init__(self, session: Session):
        self.session = session

    def add(self, rows: Sequence[OutboxRow]) -> None:
        self.session.add_all(rows)

    def pending_of(self, credential_ids: Sequence[str]) -> list[OutboxRow]:
        query = select(OutboxRow).where(
            OutboxRow.sent_at.is_(None), OutboxRow.credential_id.in_(credential_ids)
        )
        return list(self.session.scalars(query.order_by(OutboxRow.created_at)))

    def pending(self, older_than: datetime, limit: int = 500) -> list[OutboxRow]:
        query = select(OutboxRow).where(OutboxRow.sent_at.is_(None), OutboxRow.created_at < older_than)
        return list(self.session.scalars(query.order_by(OutboxRow.created_at).limit(limit)))

    def mark_sent(self, event_ids: Sequence[str]) -> None:
        if event_ids:
            self.session.execute(
                update(OutboxRow).where(OutboxRow.event_id.in_(event_ids)).values(sent_at=datetime.now(UTC))
            )


class SqlParkedMessages(ParkedMessages):
    def __init__(self, session: Session):
        self.session = session

    def waiting_learners(self, ids: set[int]) -> set[int]:
        query = select(ParkedMessageRow.learner_id).where(ParkedMessageRow.learner_id.in_(ids)).distinct()
        return set(self.session.scalars(query))

    def park(self, row: ParkedMessageRow) -> bool:
        query = select(ParkedMessageRow.id).where(
            ParkedMessageRow.learner_id == row.learner_id, ParkedMessageRow.event_id == row.event_id
        )
        if self.session.scalars(query).first() is not None:
            return False
        self.session.add(row)
        self.session.flush()  # the next message of the batch must see it
        return True

    def ready_learners(
        self, learner_ids: set[int] | None = None, course_id: int | None = None, limit: int = 500
    ) -> list[int]:
        query = select(ParkedMessageRow.learner_id).join(Learner, Learner.id == ParkedMessageRow.learner_id)
        if learner_ids is not None:
            query = query.where(ParkedMessageRow.learner_id.in_(learner_ids))
        if course_id is not None:
            query = query.where(ParkedMessageRow.course_id == course_id)
        query = query.group_by(ParkedMessageRow.learner_id).order_by(func.min(ParkedMessageRow.id))
        return list(self.session.scalars(query.limit(limit)))

    def of_learner(self, learner_id: int) -> list[ParkedMessageRow]:
        """Locked (PostgreSQL) until the resuming transaction ends."""
        query = select(ParkedMessageRow).where(ParkedMessageRow.learner_id == learner_id)
        return list(self.session.scalars(query.order_by(ParkedMessageRow.id).with_for_update()))

    def remove(self, row: ParkedMessageRow) -> None:
        self.session.delete(row)

    def count(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(ParkedMessageRow)) or 0)

    def drop(self, learner_id: int) -> int:
        query = delete(ParkedMessageRow).where(ParkedMessageRow.learner_id == learner_id)
        result = self.session.execute(query)
        return int(getattr(result, "rowcount", 0) or 0)


class SqlErasures(Erasures):
    def __init__(self, session: Session):
        self.session = session

    def erase(
        self, learner_id: int, *, topic: Callable[[str], str], source: str, now: datetime
    ) -> list[OutboxRow]:
        return erase_learner(self.session, learner_id, topic=topic, source=source, now=now)
