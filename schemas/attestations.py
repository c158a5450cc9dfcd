"""External attestation events: uploads on `attestations.uploads` (key = learner id), the importer's
results on `attestations` (key = learner id)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, Field

from .envelope import CloudEvent


class AttestationUploaded(BaseModel):
    attestation_id: str
    learner_id: int
    object_key: str | None = Field(None, description="The raw upload in S3; none when a URL was submitted.")
    url: str | None = Field(None, description="The submitted URL (hosted assertion, verification page).")
    filename: str | None = None
    media_type: str | None = Field(None, description="Sniffed from the bytes, not taken from the client.")
    size: int = 0
    sha256: str | None = None
    recheck: bool = Field(False, description="Verify an already imported attestation again.")


class AttestationUploadedMessage(CloudEvent):
    TYPE: ClassVar[str] = "pl.ebackpack.attestation.uploaded.v1"
    data: AttestationUploaded


class AttestationImported(BaseModel):
    attestation_id: str
    learner_id: int
    source_format: str = Field(description="e.g. ob3-json, ob2-png, europass-edc, pdf, image.")
    title: str
    issuer_name: str | None = None
    issuer_url: str | None = None
    issuer_identifier: str | None = None
    issued_on: datetime | None = None
    expires_on: datetime | None = None
    recipient_match: str = Field(description="match | mismatch | unknown")
    verification_status: str = Field(
        description="verified | signature valid but issuer not known | "
        "not verifiable | invalid | revoked | expired"
    )
    verification_method: str
    verification_reason: str
    checked_at: datetime


class AttestationImportedMessage(CloudEvent):
    TYPE: ClassVar[str] = "pl.ebackpack.attestation.imported.v1"
    data: AttestationImported


class AttestationRejected(BaseModel):
    attestation_id: str
    learner_id: int
    reason: str = Field(description="Why the upload was not imported (type, limits, hostile content).")
    checked_at: datetime


class AttestationRejectedMessage(CloudEvent):
    TYPE: ClassVar[str] = "pl.ebackpack.attestation.rejected.v1"
    data: AttestationRejected
