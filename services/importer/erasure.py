"""The importer's part of a learner's erasure (`learner.erased`, see docs/privacy.md): the attestations
the learner uploaded or linked, their records and their files, files before rows
(ebackpack/adapters/erasure.py). An import running meanwhile finds its row gone and saves nothing.
"""

from __future__ import annotations

from ebackpack.adapters.erasure import Stored, StoredErasure
from ebackpack.adapters.persistence.tables import AttestationRow
from schemas import LearnerErased


def uploads_folder(learner_id: int) -> str:
    """Where the backpack stores a learner's uploaded files (also those whose row was never written)."""
    return f"attestations/{learner_id}/"


class AttestationErasure(StoredErasure):
    """The learner's attestations and their files (`__call__` returns how many files were deleted)."""

    def stored(self, erased: LearnerErased) -> Stored:
        learners = AttestationRow.learner_id == erased.learner_id
        return Stored(AttestationRow.object_key, learners, [uploads_folder(erased.learner_id)])
