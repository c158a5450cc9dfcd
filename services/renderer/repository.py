"""The renderer's SQL adapter: which certificate versions are stored."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ebackpack.adapters.persistence.tables import CertificateRow


class CertificateRepository:
    def __init__(self, session: Session):
        self.session = session

    def latest(self, credential_id: str) -> CertificateRow | None:
        query = (
            select(CertificateRow)
            .where(CertificateRow.credential_id == credential_id)
            .order_by(CertificateRow.rendered_at.desc(), CertificateRow.id.desc())
            .limit(1)
        )
        return self.session.scalars(query).first()

    def versions(self, credential_id: str) -> list[CertificateRow]:
        """Every stored version, the current one (most recently rendered) first."""
        query = (
            select(CertificateRow)
            .where(CertificateRow.credential_id == credential_id)
            .order_by(CertificateRow.rendered_at.desc(), CertificateRow.id.desc())
        )
        return list(self.session.scalars(query))

    def find(self, credential_id: str, sha256: str) -> CertificateRow | None:
        query = select(CertificateRow).where(
            CertificateRow.credential_id == credential_id, CertificateRow.sha256 == sha256
        )
        return self.session.scalars(query).first()

    def add(self, row: CertificateRow) -> None:
        self.session.add(row)
