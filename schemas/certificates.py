"""Certificate render requests (`certificates.render`) and results (`certificates.rendered`)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from .envelope import CloudEvent


class CertificateRenderRequest(BaseModel):
    credential_id: str
    verification_code: str
    verify_url: str
    learner_name: str
    course_name: str
    achievement_name: str
    achievement_description: str
    issued_on: datetime
    awarding_body: str
    template: str = "default"
    language: Literal["pl", "en"] = "en"
    learning_outcomes: list[str] = Field(default_factory=list, description="Printed as a short list.")
    ects: float | None = Field(None, description="Notional workload in ECTS credits.")
    hours: float | None = Field(None, description="Notional workload in hours.")
    eqf_level: int | None = Field(None, description="European Qualifications Framework level.")
    rerender: bool = Field(
        False,
        description=(
            "Render even if a version is stored (after a template change): a new version when the bytes "
            "differ; every earlier version stays retrievable."
        ),
    )
    credential_json: str | None = Field(
        None,
        description=(
            "The signed Open Badges 3.0 credential (Data Integrity proof), attached inside the PDF."
        ),
    )


class CertificateRenderRequestMessage(CloudEvent):
    TYPE: ClassVar[str] = "pl.ebackpack.certificate.render_requested.v1"
    data: CertificateRenderRequest


class CertificateRendered(BaseModel):
    credential_id: str
    bucket: str
    object_key: str = Field(description="Immutable: contains the PDF's content hash.")
    sha256: str = Field(description="Hex SHA-256 of the PDF bytes.")
    size: int
    template: str
    rendered_at: datetime


class CertificateRenderedMessage(CloudEvent):
    TYPE: ClassVar[str] = "pl.ebackpack.certificate.rendered.v1"
    data: CertificateRendered
