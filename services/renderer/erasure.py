"""The renderer's part of a learner's erasure (`learner.erased`, see services/issuer/privacy.py): the
certificate PDFs of the learner's credentials, every version.

Objects first, rows after: a crash in between leaves rows whose objects are gone, and the redelivered
event deletes them. A PDF stored whose row a crash never wrote is found under its credential's folder.
Erasing again finds nothing and changes nothing.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

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
        credentials = erased.credential_ids
        if not credentials:
            return 0
        with self.sessions() as session:
            query = select(CertificateRow.object_key).where(CertificateRow.credential_id.in_(credentials))
            keys = set(session.scalars(query))
        for credential_id in credentials:
            keys.update(self.store.keys(certificate_folder(credential_id)))
        for key in sorted(keys):
            self.store.delete(key)
        with self.sessions.begin() as session:
            session.execute(delete(CertificateRow).where(CertificateRow.credential_id.in_(credentials)))
        return len(keys)
