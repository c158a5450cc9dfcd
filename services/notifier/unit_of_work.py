"""The notifier's unit of work: one transaction over its repositories (repository.py).

    with uow:                      # a transaction begins
        ... uow.notifications ...
        uow.commit()               # leaving without commit() rolls back

The same object may be entered again for the next transaction (a delivery takes three: the claim, the
send's record, a failure's schedule), but one at a time: each thread uses a unit of work of its own.
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.preferences import PreferenceStore

from .repository import (
    Credentials,
    Notifications,
    Pdfs,
    Preferences,
    SqlCredentials,
    SqlNotifications,
    SqlPdfs,
)


class Conflict(Exception):
    """Another worker wrote the same record at the same time: the whole step is worth another try."""


class NotifierUnitOfWork(abc.ABC):
    notifications: Notifications
    pdfs: Pdfs
    preferences: Preferences
    credentials: Credentials

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.rollback()

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...


class SqlUnitOfWork(NotifierUnitOfWork):
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def __enter__(self) -> Self:
        self.session = self.sessions()
        self.notifications = SqlNotifications(self.session)
        self.pdfs = SqlPdfs(self.session)
        self.preferences = PreferenceStore(self.session)
        self.credentials = SqlCredentials(self.session)
        return super().__enter__()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            super().__exit__(kind, exc, tb)
        finally:
            self.session.close()
        if isinstance(exc, IntegrityError):  # a flush inside the block met another worker's row
            raise Conflict(str(exc.orig)) from exc

    def commit(self) -> None:
        try:
            self.session.commit()
        except IntegrityError as exc:
            raise Conflict(str(exc.orig)) from exc

    def rollback(self) -> None:
        self.session.rollback()
