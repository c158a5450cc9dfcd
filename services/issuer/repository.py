"""The issuer's SQL adapter: awards and their outbox, in one transaction, and the parked messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, or_, select, tuple_, update
from sqlalchemy.orm import Session

from ebackpack.adapters.persistence.tables import AwardRow, Course, Learner, OutboxRow, ParkedMessageRow

from .domain import Award


class AwardRepository:
    def __init__(self, session: Session):
        self.session = session

    def existing(self, awards: Sequence[Award]) -> dict[str, str]:
        """The awards saved already: their id -> the id they were saved under. By id, and by learner and
        rule, which finds awards saved under an earlier way of deriving ids (same learner, same rule)."""
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

    def learners(self, ids: set[int]) -> dict[int, Learner]:
        return {row.id: row for row in self.session.scalars(select(Learner).where(Learner.id.in_(ids)))}

    def courses(self, ids: set[int]) -> dict[int, Course]:
        return {row.id: row for row in self.session.scalars(select(Course).where(Course.id.in_(ids)))}

    def pending_events_of(self, credential_ids: Sequence[str]) -> list[OutboxRow]:
        query = select(OutboxRow).where(
            OutboxRow.sent_at.is_(None), OutboxRow.credential_id.in_(credential_ids)
        )
        return list(self.session.scalars(query.order_by(OutboxRow.created_at)))

    def learner(self, learner_id: int) -> Learner | None:
        return self.session.get(Learner, learner_id)

    def course(self, course_id: int) -> Course | None:
        return self.session.get(Course, course_id)

    def pending_events(self, older_than: datetime, limit: int = 500) -> list[OutboxRow]:
        query = select(OutboxRow).where(OutboxRow.sent_at.is_(None), OutboxRow.created_at < older_than)
        return list(self.session.scalars(query.order_by(OutboxRow.created_at).limit(limit)))

    def mark_sent(self, event_ids: Sequence[str]) -> None:
        if event_ids:
            self.session.execute(
                update(OutboxRow).where(OutboxRow.event_id.in_(event_ids)).values(sent_at=datetime.now(UTC))
            )

    # --- parked messages (waiting for a profile), per learner in arrival order

    def waiting_learners(self, ids: set[int]) -> set[int]:
        """Of these learners, those who have parked messages: their later messages queue behind them."""
        query = select(ParkedMessageRow.learner_id).where(ParkedMessageRow.learner_id.in_(ids)).distinct()
        return set(self.session.scalars(query))

    def park(self, row: ParkedMessageRow) -> bool:
        """False when this learner's event is parked already (a redelivery)."""
        query = select(ParkedMessageRow.id).where(
            ParkedMessageRow.learner_id == row.learner_id, ParkedMessageRow.event_id == row.event_id
        )
        if self.session.scalars(query).first() is not None:
            return False
        self.session.add(row)
        self.session.flush()  # the next message of the batch must see it
        return True

    def parked_learners(
        self, learner_ids: set[int] | None = None, course_id: int | None = None, limit: int = 500
    ) -> list[int]:
        """Learners with parked messages (all, these, or those waiting on this course) whose profile is
        there now, longest waiting first: without it nothing of theirs can be issued."""
        query = select(ParkedMessageRow.learner_id).join(Learner, Learner.id == ParkedMessageRow.learner_id)
        if learner_ids is not None:
            query = query.where(ParkedMessageRow.learner_id.in_(learner_ids))
        if course_id is not None:
            query = query.where(ParkedMessageRow.course_id == course_id)
        query = query.group_by(ParkedMessageRow.learner_id).order_by(func.min(ParkedMessageRow.id))
        return list(self.session.scalars(query.limit(limit)))

    def parked_of(self, learner_id: int) -> list[ParkedMessageRow]:
        """A learner's parked messages in order, locked (PostgreSQL) until the resuming transaction ends."""
        query = select(ParkedMessageRow).where(ParkedMessageRow.learner_id == learner_id)
        return list(self.session.scalars(query.order_by(ParkedMessageRow.id).with_for_update()))

    def parked_count(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(ParkedMessageRow)) or 0)

    def drop_parked(self, learner_id: int) -> int:
        """The learner's erasure: what they were waiting for will never be issued."""
        query = delete(ParkedMessageRow).where(ParkedMessageRow.learner_id == learner_id)
        result = self.session.execute(query)
        return int(getattr(result, "rowcount", 0) or 0)
