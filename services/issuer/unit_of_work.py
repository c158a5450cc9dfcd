"""One transaction of the issuer, with the repositories its handlers use.

    with uow:
        ... uow.awards / uow.outbox / ...
        uow.commit()

What is not committed when the block ends is discarded (ebackpack/adapters/unit_of_work.py). The SQL unit
of work opens a session per block (from the platform's session factory); the unit tests use an in-memory
one (tests/unit/issuer_fakes.py).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ebackpack.adapters import unit_of_work
from ebackpack.adapters.unit_of_work import UnitOfWork, WriteConflict
from ebackpack.bootstrap import Platform

from .repository import (
    Awards,
    Erasures,
    Outbox,
    ParkedMessages,
    ProfileViews,
    SqlAwards,
    SqlErasures,
    SqlOutbox,
    SqlParkedMessages,
    SqlProfileViews,
    SqlStatusSlots,
    StatusSlots,
)

__all__ = ["AbstractUnitOfWork", "SqlUnitOfWork", "WriteConflict"]


class AbstractUnitOfWork(UnitOfWork):
    awards: Awards
    status_slots: StatusSlots
    profiles: ProfileViews
    outbox: Outbox
    parked: ParkedMessages
    erasures: Erasures


class SqlUnitOfWork(unit_of_work.SqlUnitOfWork, AbstractUnitOfWork):
    def __init__(self, platform: Platform):
        super().__init__(platform.sessions)
        self.platform = platform

    def open_repositories(self, session: Session) -> None:
        store = self.platform.credential_store(session)
        self.awards = SqlAwards(session, store)
        self.status_slots = SqlStatusSlots(store)
        self.profiles = SqlProfileViews(session)
        self.outbox = SqlOutbox(session)
        self.parked = SqlParkedMessages(session)
        self.erasures = SqlErasures(session)
