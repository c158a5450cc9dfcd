"""The renderer's table: one row per stored certificate PDF version. The backpack reads it through
ebackpack/adapters/certificate_reads.py."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class CertificateRow(Base):
    """A stored PDF version of a credential's certificate. Object keys are immutable."""

    __tablename__ = "certificates"
    __table_args__ = (UniqueConstraint("credential_id", "sha256", name="uq_certificates_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    credential_id: Mapped[str] = mapped_column(ForeignKey("awards.credential_id"), index=True)
    bucket: Mapped[str] = mapped_column(String(200))
    object_key: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    template: Mapped[str] = mapped_column(String(100))
    rendered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
