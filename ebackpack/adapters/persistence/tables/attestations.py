"""Uploaded attestations: the backpack records an upload, the importer its verdict."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class AttestationRow(Base):
    """An external attestation a learner uploaded: the raw object in S3, then the importer's record.

    `state`: received (bytes stored, waiting for the importer) -> imported | rejected. The normalized
    fields are empty until imported; `rejection_reason` says why an upload was not imported.
    """

    __tablename__ = "attestations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    learner_id: Mapped[int] = mapped_column(Integer, index=True)
    state: Mapped[str] = mapped_column(String(20), default="received", index=True)
    object_key: Mapped[str | None] = mapped_column(String(300), nullable=True)  # None for a submitted URL
    submitted_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    filename: Mapped[str | None] = mapped_column(String(255), nullable=True)
    media_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)
    event_id: Mapped[str | None] = mapped_column(String(36), nullable=True)  # of the last result event
    rejection_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    source_format: Mapped[str | None] = mapped_column(String(30), nullable=True)
    verification_status: Mapped[str | None] = mapped_column(String(60), nullable=True)
    # The normalized record (services.importer.domain.Attestation) as JSON, original JSON included.
    record: Mapped[str | None] = mapped_column(Text, nullable=True)
