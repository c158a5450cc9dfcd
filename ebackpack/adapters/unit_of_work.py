"""One transaction over a service's repositories, the base of each service's unit of work.

    with uow:
        ... uow.<repository> ...
        uow.commit()

What is not committed when the block ends is discarded. A service declares its repositories on a subclass
of `UnitOfWork` (its handlers and its in-memory fake for the unit tests use that one), and opens them on
the block's session in a subclass of `SqlUnitOfWork`. The same object may be entered again for the next
transaction, one block at a time: each thread uses a unit of work of its own.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session


class WriteConflict(Exception):
    """Another transaction saved the same unique key first: this one was refused, and the same work tried
    again sees what the other saved."""


class UnitOfWork(abc.ABC):
    def __enter__(self) -> Self:
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


class SqlUnitOfWork(UnitOfWork):
    """One SQLAlchemy session per block. Rows read in it stay readable after the block (the session
    factory does not expire them on commit, and closing detaches them as they are). A unique key that
    another transaction saved first, met by a flush in the block or by the commit, leaves the block as
    `WriteConflict`."""

    session: Session

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self.sessions = sessions

    @abc.abstractmethod
    def open_repositories(self, session: Session) -> None:
        """The service's repositories, on this block's session."""

    def __enter__(self) -> Self:
        self.session = self.sessions()
        self.open_repositories(self.session)
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
