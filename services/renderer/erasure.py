"""The renderer's part of a learner's erasure (`learner.erased`, see docs/privacy.md): the certificate
PDFs of the learner's credentials, every version, objects before rows (ebackpack/adapters/erasure.py).
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.erasure import erase_stored
from ebackpack.adapters.persistence.tables import CertificateRow
from ebackpack.adapters.storage import ObjectStore
from schemas import LearnerErased


def certificate_folder(credential_id: str) -> str:
    """Where every version of a credential's PDF is stored (service.object_key)."""
    return f"certificates/{credential_id}/"


class CertificateErasure:
    def __init__(self, sessions: sessionmaker[Session], store: ObjectStore) -> None:
        self.sessions = sessions
        self.store = store

    def __call__(self, erased: LearnerErased) -> int:
        """Deletes the learner's certificates; returns how many objects were deleted."""
        credentials = CertificateRow.credential_id.in_(erased.credential_ids)
        return erase_stored(
            self.sessions,
            self.store,
            keys=select(CertificateRow.object_key).where(credentials),
            folders=[certificate_folder(c) for c in erased.credential_ids],
            rows=delete(CertificateRow).where(credentials),
        )
