"""The notifier's unit of work: one transaction over its repositories (repository.py), on the
platform's base (ebackpack/adapters/unit_of_work.py).

    with uow:                      # a transaction begins
        ... uow.notifications ...
        uow.commit()               # leaving without commit() rolls back

The same object may be entered again for the next transaction (a delivery takes three: the claim, the
send's record, a failure's schedule), but one at a time: each thread uses a unit of work of its own.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ebackpack.adapters import unit_of_work
from ebackpack.adapters.preferences import PreferenceStore
from ebackpack.adapters.unit_of_work import UnitOfWork, WriteConflict

from .repository import (
    Credentials,
    Notifications,
    Pdfs,
    Preferences,
    SqlCredentials,
    SqlNotifications,
    SqlPdfs,
)

__all__ = ["Conflict", "NotifierUnitOfWork", "SqlUnitOfWork"]

# Another worker wrote the same record at the same time: the whole step is worth another try.
Conflict = WriteConflict


class NotifierUnitOfWork(UnitOfWork):
    notifications: Notifications
    pdfs: Pdfs
    preferences: Preferences
    credentials: Credentials


class SqlUnitOfWork(unit_of_work.SqlUnitOfWork, NotifierUnitOfWork):
    def open_repositories(self, session: Session) -> None:
        self.notifications = SqlNotifications(session)
        self.pdfs = SqlPdfs(session)
        self.preferences = PreferenceStore(session)
        self.credentials = SqlCredentials(session)
