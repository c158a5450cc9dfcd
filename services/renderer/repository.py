"""The renderer's SQL adapter: the certificate versions it stores. What anyone reads about them (the
current version, all versions) is `CertificateReads` in ebackpack core, shared with the backpack."""

from __future__ import annotations

from sqlalchemy import select

from ebackpack.adapters.certificate_reads import CertificateReads
from ebackpack.adapters.persistence.tables import CertificateRow


class CertificateRepository(CertificateReads):
    def find(self, credential_id: str, sha256: str) -> CertificateRow | None:
        query = select(CertificateRow).where(
            CertificateRow.credential_id == credential_id, CertificateRow.sha256 == sha256
        )
        return self.session.scalars(query).first()

    def add(self, row: CertificateRow) -> None:
        self.session.add(row)
