"""The issuer's unit of work in memory, for its handlers' unit tests: the same repository interfaces as
the SQL adapter (services/issuer/repository.py), over dicts and lists of the same row classes.

Unique keys hold as in SQL (a second award of a learner and rule, an outbox event saved twice): the fake
refuses them with the SQL unit of work's `WriteConflict`. What it does not model is a rollback: a
handler that fails half-way leaves its changes here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime

from ebackpack.adapters.credential_store import normalize_code
from ebackpack.adapters.persistence.tables import (
    AwardRow,
    Course,
    Learner,
    OutboxRow,
    ParkedMessageRow,
    SignedCredentialRow,
)
from ebackpack.domain.credentials.facts import as_utc
from schemas.moodle import Profiles
from services.issuer.domain import Award
from services.issuer.repository import (
    Awards,
    Erasures,
    Outbox,
    ParkedMessages,
    ProfileViews,
    StatusSlots,
)
from services.issuer.unit_of_work import AbstractUnitOfWork, WriteConflict


class FakeAwards(Awards):
    def __init__(self) -> None:
        self.rows: dict[str, AwardRow] = {}
        self.signed: dict[tuple[str, str], SignedCredentialRow] = {}

    def existing(self, awards: Sequence[Award]) -> dict[str, str]:
        found: dict[str, str] = {}
        for award in awards:
            if award.credential_id in self.rows:
                found[award.credential_id] = award.credential_id
            for row in self.rows.values():
                if (row.learner_id, row.rule_id) == (award.learner_id, award.rule.id):
                    found[award.credential_id] = row.credential_id
        return found

    def add(self, award: AwardRow, signed: Sequence[SignedCredentialRow]) -> None:
        if award.credential_id in self.rows or self.existing_pair(award):
            raise WriteConflict(f"award {award.credential_id} saved already")
        self.rows[award.credential_id] = award
        self.signed.update({(s.credential_id, s.format): s for s in signed})

    def existing_pair(self, award: AwardRow) -> bool:
        return any((r.learner_id, r.rule_id) == (award.learner_id, award.rule_id) for r in self.rows.values())

    def find(self, code_or_id: str) -> AwardRow | None:
        if code_or_id in self.rows:
            return self.rows[code_or_id]
        code = normalize_code(code_or_id)
        return next((r for r in self.rows.values() if r.verification_code == code), None)

    def signed_document(self, credential_id: str, fmt: str) -> str | None:
        signed = self.signed.get((credential_id, fmt))
        return signed.document if signed else None

    def not_revoked(
        self, rule_ids: Collection[str], course_id: int | None = None, rule_id: str | None = None
    ) -> list[AwardRow]:
        return [
            row
            for row in self.rows.values()
            if row.status != "revoked"
            and row.rule_id in rule_ids
            and course_id in (None, row.course_id)
            and rule_id in (None, row.rule_id)
        ]

    def due_to_expire(self, now: datetime, limit: int) -> list[AwardRow]:
        due = [
            row
            for row in self.rows.values()
            if row.status == "issued" and row.valid_until is not None and as_utc(row.valid_until) <= now
        ]
        return due[:limit]


class FakeStatusSlots(StatusSlots):
    """The next free index of list 1, in order: where a slot is matters to the status list, not here."""

    def __init__(self, awards: FakeAwards):
        self.awards = awards

    def allocate(self, credential_ids: list[str]) -> dict[str, tuple[int, int]]:
        used = {(r.status_list, r.status_index) for r in self.awards.rows.values()}
        chosen: dict[str, tuple[int, int]] = {}
        index = 0
        for credential_id in credential_ids:
            while (1, index) in used:
                index += 1
            chosen[credential_id] = (1, index)
            used.add((1, index))
        return chosen


class FakeProfileViews(ProfileViews):
    def __init__(self) -> None:
        self.by_learner: dict[int, Learner] = {}
        self.by_course: dict[int, Course] = {}

    def learners(self, ids: set[int]) -> dict[int, Learner]:
        return {i: self.by_learner[i] for i in ids if i in self.by_learner}

    def courses(self, ids: set[int]) -> dict[int, Course]:
        return {i: self.by_course[i] for i in ids if i in self.by_course}

    def learner(self, learner_id: int) -> Learner | None:
        return self.by_learner.get(learner_id)

    def course(self, course_id: int) -> Course | None:
        return self.by_course.get(course_id)

    def save(self, profiles: Profiles) -> None:
        for user in profiles.users:
            self.by_learner[user.id] = Learner(
                id=user.id, firstname=user.firstname, lastname=user.lastname, email=user.email, lang=user.lang
            )
        for course in profiles.courses:
            self.by_course[course.id] = Course(
                id=course.id, fullname=course.fullname, shortname=course.shortname
            )


class FakeOutbox(Outbox):
    def __init__(self) -> None:
        self.rows: dict[str, OutboxRow] = {}  # by event id, in the order saved

    def add(self, rows: Sequence[OutboxRow]) -> None:
        for row in rows:
            if row.event_id in self.rows:
                raise WriteConflict(f"event {row.event_id} saved already")
            self.rows[row.event_id] = row

    def pending_of(self, credential_ids: Sequence[str]) -> list[OutboxRow]:
        return [r for r in self.rows.values() if r.sent_at is None and r.credential_id in credential_ids]

    def pending(self, older_than: datetime, limit: int = 500) -> list[OutboxRow]:
        return [r for r in self.rows.values() if r.sent_at is None and r.created_at < older_than][:limit]

    def mark_sent(self, event_ids: Sequence[str]) -> None:
        for event_id in event_ids:
            self.rows[event_id].sent_at = datetime.now(UTC)


class FakeParkedMessages(ParkedMessages):
    def __init__(self, profiles: FakeProfileViews):
        self.profiles = profiles
        self.rows: list[ParkedMessageRow] = []  # in arrival order
        self.next_id = 1

    def waiting_learners(self, ids: set[int]) -> set[int]:
        return {r.learner_id for r in self.rows if r.learner_id in ids}

    def park(self, row: ParkedMessageRow) -> bool:
        if any((r.learner_id, r.event_id) == (row.learner_id, row.event_id) for r in self.rows):
            return False
        row.id, self.next_id = self.next_id, self.next_id + 1
        self.rows.append(row)
        return True

    def ready_learners(
        self, learner_ids: set[int] | None = None, course_id: int | None = None, limit: int = 500
    ) -> list[int]:
        ready = [
            r.learner_id
            for r in self.rows
            if r.learner_id in self.profiles.by_learner
            and (learner_ids is None or r.learner_id in learner_ids)
            and course_id in (None, r.course_id)
        ]
        return list(dict.fromkeys(ready))[:limit]  # longest waiting first: the rows are in arrival order

    def of_learner(self, learner_id: int) -> list[ParkedMessageRow]:
        return [r for r in self.rows if r.learner_id == learner_id]

    def remove(self, row: ParkedMessageRow) -> None:
        self.rows.remove(row)

    def count(self) -> int:
        return len(self.rows)

    def drop(self, learner_id: int) -> int:
        dropped = self.of_learner(learner_id)
        self.rows = [r for r in self.rows if r.learner_id != learner_id]
        return len(dropped)


class FakeErasures(Erasures):
    """Records whom it erased; what erasure removes is privacy.py's, tested on SQL."""

    def __init__(self) -> None:
        self.erased: list[int] = []

    def erase(
        self, learner_id: int, *, topic: Callable[[str], str], source: str, now: datetime
    ) -> list[OutboxRow]:
        self.erased.append(learner_id)
        return []


class FakeUnitOfWork(AbstractUnitOfWork):
    awards: FakeAwards
    status_slots: FakeStatusSlots
    profiles: FakeProfileViews
    outbox: FakeOutbox
    parked: FakeParkedMessages
    erasures: FakeErasures

    def __init__(self) -> None:
        self.awards = awards = FakeAwards()
        self.status_slots = FakeStatusSlots(awards)
        self.profiles = profiles = FakeProfileViews()
        self.outbox = FakeOutbox()
        self.parked = FakeParkedMessages(profiles)
        self.erasures = FakeErasures()
        self.commits = 0

    def commit(self) -> None:
        self.commits += 1

    def discard(self) -> None:
        pass
