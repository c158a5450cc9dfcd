"""The renderer's part of a learner's erasure (`learner.erased`, see docs/privacy.md): the certificate
PDFs of the learner's credentials, every version, objects before rows (ebackpack/adapters/erasure.py).
"""

from __future__ import annotations

from ebackpack.adapters.erasure import Stored, StoredErasure
from ebackpack.adapters.persistence.tables import CertificateRow
from schemas import LearnerErased


def certificate_folder(credential_id: str) -> str:
    """Where every version of a credential's PDF is stored (service.object_key)."""
    return f"certificates/{credential_id}/"


class CertificateErasure(StoredErasure):
    """The learner's certificates, every version (`__call__` returns how many objects were deleted)."""

    def stored(self, erased: LearnerErased) -> Stored:
        credentials = CertificateRow.credential_id.in_(erased.credential_ids)
        folders = [certificate_folder(c) for c in erased.credential_ids]
        return Stored(CertificateRow.object_key, credentials, folders)
