"""One transaction of the issuer, with the repositories its handlers use.

    with uow:
        ... uow.awards / uow.outbox / ...
        uow.commit()

What is not committed when the block ends is discarded. The SQL unit of work opens a session per block
(from the platform's session factory); the unit tests use an in-memory one (tests/unit/issuer_fakes.py).
"""

from __future__ import annotations

import abc
from types import TracebackType

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

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


class WriteConflict(Exception):
    """Another transaction saved the same unique key first (an award, a status slot): this one was
    refused, and the same work tried again sees what the other saved."""


class AbstractUnitOfWork(abc.ABC):
    awards: Awards
    status_slots: StatusSlots
    profiles: ProfileViews
    outbox: Outbox
    parked: ParkedMessages
    erasures: Erasures

    def __enter__(self) -> AbstractUnitOfWork:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.discard()

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def discard(self) -> None:
        """Ends the block: what was not committed is dropped."""


class SqlUnitOfWork(AbstractUnitOfWork):
    """One SQLAlchemy session per block. Rows read in it stay readable after the block (the session
    factory does not expire them on commit, and closing detaches them as they are)."""

    session: Session

    def __init__(self, platform: Platform):
        self.platform = platform

    def __enter__(self) -> AbstractUnitOfWork:
        self.session = self.platform.sessions()
        store = self.platform.credential_store(self.session)
        self.awards = SqlAwards(self.session, store)
        self.status_slots = SqlStatusSlots(store)
        self.profiles = SqlProfileViews(self.session)
        self.outbox = SqlOutbox(self.session)
        self.parked = SqlParkedMessages(self.session)
        self.erasures = SqlErasures(self.session)
        return super().__enter__()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        super().__exit__(kind, error, trace)
        if isinstance(error, IntegrityError):
            raise WriteConflict(str(error.orig)) from error

    def commit(self) -> None:
        self.session.commit()

    def discard(self) -> None:
        self.session.close()  # rolls back what was not committed
