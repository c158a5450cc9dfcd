"""The importer's part of a learner's erasure (`learner.erased`, see docs/privacy.md): the attestations
the learner uploaded or linked, their records and their files, files before rows
(ebackpack/adapters/erasure.py). An import running meanwhile finds its row gone and saves nothing.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.erasure import erase_stored
from ebackpack.adapters.persistence.tables import AttestationRow
from ebackpack.adapters.storage import ObjectStore
from schemas import LearnerErased


def uploads_folder(learner_id: int) -> str:
    """Where the backpack stores a learner's uploaded files (also those whose row was never written)."""
    return f"attestations/{learner_id}/"


class AttestationErasure:
    def __init__(self, sessions: sessionmaker[Session], objects: ObjectStore) -> None:
        self.sessions = sessions
        self.objects = objects

    def __call__(self, erased: LearnerErased) -> int:
        """Deletes the learner's attestations; returns how many files were deleted."""
        learners = AttestationRow.learner_id == erased.learner_id
        return erase_stored(
            self.sessions,
            self.objects,
            keys=select(AttestationRow.object_key).where(learners),
            folders=[uploads_folder(erased.learner_id)],
            rows=delete(AttestationRow).where(learners),
        )
