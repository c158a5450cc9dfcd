"""The issuer's SQL adapter: awards and their outbox, in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ebackpack.persistence.tables import AwardRow, Course, Learner, OutboxRow


class AwardRepository:
    def __init__(self, session: Session):
        self.session = session

    def existing(self, credential_ids: Sequence[str]) -> set[str]:
        query = select(AwardRow.credential_id).where(AwardRow.credential_id.in_(credential_ids))
        return set(self.session.scalars(query))

    def learners(self, ids: set[int]) -> dict[int, Learner]:
        return {row.id: row for row in self.session.scalars(select(Learner).where(Learner.id.in_(ids)))}

    def courses(self, ids: set[int]) -> dict[int, Course]:
        return {row.id: row for row in self.session.scalars(select(Course).where(Course.id.in_(ids)))}

    def pending_events_of(self, credential_ids: Sequence[str]) -> list[OutboxRow]:
        query = select(OutboxRow).where(OutboxRow.sent_at.is_(None),
                                        OutboxRow.credential_id.in_(credential_ids))
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
            self.session.execute(update(OutboxRow).where(OutboxRow.event_id.in_(event_ids))
                                 .values(sent_at=datetime.now(UTC)))
