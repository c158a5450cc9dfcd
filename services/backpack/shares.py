"""Public links a learner creates for one credential: they expire, and the learner can withdraw them.

The token is 32 random bytes (URL-safe): a link cannot be guessed from codes, ids or other links.
A link lasts only as long as its learner's profile: once the learner is erased it no longer resolves,
and its row is deleted at the next sign-in (session.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from ebackpack.adapters.persistence.tables import Learner, ShareRow
from ebackpack.domain.credentials.facts import as_utc

DURATIONS_DAYS = (7, 30, 365)
ShareState = Literal["active", "withdrawn", "expired"]


@dataclass(frozen=True)
class Share:
    token: str
    credential_id: str
    created_at: datetime
    expires_at: datetime
    withdrawn_at: datetime | None

    def state(self, now: datetime) -> ShareState:
        if self.withdrawn_at is not None:
            return "withdrawn"
        return "expired" if self.expires_at <= now else "active"


def _share(row: ShareRow) -> Share:
    return Share(
        row.token,
        row.credential_id,
        as_utc(row.created_at),
        as_utc(row.expires_at),
        as_utc(row.withdrawn_at) if row.withdrawn_at else None,
    )


class Shares:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(self, learner_id: int, credential_id: str, days: int, now: datetime | None = None) -> Share:
        if days not in DURATIONS_DAYS:
            raise ValueError(f"a link lasts one of {DURATIONS_DAYS} days")
        now = now or datetime.now(UTC)
        row = ShareRow(
            token=secrets.token_urlsafe(32),
            credential_id=credential_id,
            learner_id=learner_id,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        self.session.add(row)
        self.session.flush()
        return _share(row)

    def of_credential(self, learner_id: int, credential_id: str) -> list[Share]:
        rows = self.session.scalars(
            select(ShareRow)
            .where(ShareRow.learner_id == learner_id, ShareRow.credential_id == credential_id)
            .order_by(ShareRow.created_at.desc())
        )
        return [_share(row) for row in rows]

    def withdraw(self, learner_id: int, token: str, now: datetime | None = None) -> bool:
        """False when the link is not this learner's (or does not exist)."""
        row = self.session.get(ShareRow, token)
        if row is None or row.learner_id != learner_id:
            return False
        if row.withdrawn_at is None:
            row.withdrawn_at = now or datetime.now(UTC)
        return True

    def find(self, token: str) -> Share | None:
        """None too when the link's learner was erased."""
        query = (
            select(ShareRow).join(Learner, Learner.id == ShareRow.learner_id).where(ShareRow.token == token)
        )
        row = self.session.scalars(query).first()
        return _share(row) if row else None

    def forget_erased(self) -> int:
        """Deletes the links of learners erased since; returns how many."""
        known = exists().where(Learner.id == ShareRow.learner_id)
        result = self.session.execute(delete(ShareRow).where(~known))
        return int(getattr(result, "rowcount", 0) or 0)
