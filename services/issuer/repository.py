"""The issuer's SQL adapter: awards and their outbox, in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ebackpack.persistence.tables import AwardRow, Course, Learner, OutboxRow, SignedCredentialRow


class AwardRepository:
    def __init__(self, session: Session):
        self.session = session

    def get(self, credential_id: str) -> AwardRow | None:
        return self.session.get(AwardRow, credential_id)

    def learner(self, learner_id: int) -> Learner | None:
        return self.session.get(Learner, learner_id)

    def course(self, course_id: int) -> Course | None:
        return self.session.get(Course, course_id)

    def add(self, award: AwardRow, events: Sequence[OutboxRow],
            signed: Sequence[SignedCredentialRow] = ()) -> None:
        self.session.add(award)
        self.session.flush()  # the award first: its unique constraints decide
        self.session.add_all([*signed, *events])

    def pending_events(self, credential_id: str | None = None, older_than: datetime | None = None,
                       limit: int = 500) -> list[OutboxRow]:
        query = select(OutboxRow).where(OutboxRow.sent_at.is_(None))
        if credential_id is not None:
            query = query.where(OutboxRow.credential_id == credential_id)
        if older_than is not None:
            query = query.where(OutboxRow.created_at < older_than)
        return list(self.session.scalars(query.order_by(OutboxRow.created_at).limit(limit)))

    def mark_sent(self, event_ids: Sequence[str]) -> None:
        if event_ids:
            self.session.execute(update(OutboxRow).where(OutboxRow.event_id.in_(event_ids))
                                 .values(sent_at=datetime.now(UTC)))
