"""Erasing what a service stored in S3 and recorded in SQL, for the right to erasure (docs/privacy.md).

Objects first, rows after: a crash in between leaves rows whose objects are gone, and the redelivered
event finds the rows and deletes them (an S3 delete of a missing key succeeds). An object stored whose
row a crash never wrote is found by listing the folders the owner stores under. Erasing again finds
nothing and changes nothing.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from ebackpack.adapters.storage import ObjectStore
from schemas import LearnerErased


@dataclass(frozen=True)
class Stored:
    """What an owner stored for one learner: the rows `where` picks in the table of `object_key` (the
    column naming each row's object, None: no object), and the folders its objects are stored under."""

    object_key: InstrumentedAttribute[Any]
    where: ColumnElement[bool]
    folders: list[str]


class StoredErasure(abc.ABC):
    """An owner's part of a learner's erasure (`learner.erased`): what `stored` names, objects first."""

    def __init__(self, sessions: sessionmaker[Session], objects: ObjectStore) -> None:
        self.sessions = sessions
        self.objects = objects

    @abc.abstractmethod
    def stored(self, erased: LearnerErased) -> Stored:
        """What the owner stored for the erased learner."""

    def __call__(self, erased: LearnerErased) -> int:
        """Deletes the objects the rows name and those under the folders, then the rows; returns how many
        objects."""
        stored = self.stored(erased)
        with self.sessions() as session:
            keys = session.scalars(select(stored.object_key).where(stored.where))
            found: set[str] = {key for key in keys if key}
        for folder in stored.folders:
            found.update(self.objects.keys(folder))
        for key in sorted(found):
            self.objects.delete(key)
        with self.sessions.begin() as session:
            session.execute(delete(stored.object_key.class_).where(stored.where))
        return len(found)
