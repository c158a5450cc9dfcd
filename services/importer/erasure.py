"""The importer's part of a learner's erasure (`learner.erased`, see services/issuer/privacy.py): the
attestations the learner uploaded or linked, their records and their stored files.

Files first, rows after: a crash in between leaves rows whose files are gone, and the redelivered event
deletes them; a file whose row was never written (the backpack stores the file first) is found under the
learner's folder. An import running meanwhile finds its row gone and saves nothing. Erasing again finds
nothing and changes nothing.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.persistence.tables import AttestationRow
from ebackpack.adapters.storage import ObjectStore
from schemas import LearnerErased


def uploads_folder(learner_id: int) -> str:
    """Where the backpack stores a learner's uploaded files."""
    return f"attestations/{learner_id}/"


class AttestationErasure:
    def __init__(self, sessions: sessionmaker[Session], objects: ObjectStore) -> None:
        self.sessions = sessions
        self.objects = objects

    def __call__(self, erased: LearnerErased) -> int:
        """Deletes the learner's attestations; returns how many files were deleted."""
        learner = erased.learner_id
        with self.sessions() as session:
            stored = session.scalars(
                select(AttestationRow.object_key).where(
                    AttestationRow.learner_id == learner, AttestationRow.object_key.is_not(None)
                )
            )
            files = {key for key in stored if key} | set(self.objects.keys(uploads_folder(learner)))
        for key in sorted(files):
            self.objects.delete(key)
        with self.sessions.begin() as session:
            session.execute(delete(AttestationRow).where(AttestationRow.learner_id == learner))
        return len(files)
