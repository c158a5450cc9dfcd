"""Credential events on `credentials`, keyed by learner."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from .envelope import CloudEvent


class Achievement(BaseModel):
    id: str = Field(description="Award rule id: one achievement per rule.")
    name: str
    description: str
    criteria: str
    badge_image: str | None = None


class CredentialIssued(BaseModel):
    credential_id: str = Field(description="Deterministic: same site + learner + rule = same id.")
    learner_id: int
    course_id: int
    achievement: Achievement
    issued_on: datetime = Field(description="When the learner completed the course.")
    verification_code: str = Field(description="Printed on the certificate; part of the verify URL.")
    verify_url: str
    badge: bool = Field(description="The rule awards a digital badge.")
    certificate: bool = Field(description="The rule awards a PDF certificate.")


class CredentialIssuedMessage(CloudEvent):
    TYPE: ClassVar[str] = "pl.ebackpack.credential.issued.v1"
    type: Literal["pl.ebackpack.credential.issued.v1"] = "pl.ebackpack.credential.issued.v1"
    data: CredentialIssued
