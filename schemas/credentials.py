"""Credential events on `credentials`, keyed by learner."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from .envelope import CloudEvent

# Which of the issuer's lanes awarded a credential: `live` (the webhook, the log-store poller: as it
# happens) or `backfill` (history: `ebackpack gateway backfill`, the import; `moodle.events.backfill`).
Origin = Literal["live", "backfill"]
LIVE: Origin = "live"
BACKFILL: Origin = "backfill"


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
    valid_until: datetime | None = Field(None, description="Expiry; none = never expires.")
    assertion_url: str | None = Field(None, description="Hosted Open Badges 2.0 assertion.")
    formats: list[str] = Field(default_factory=list, description="Signed OB 3.0 proof formats stored.")
    origin: Origin = Field(
        LIVE,
        description=(
            "`backfill`: awarded from history (the gateway's backfill or import), for a completion that "
            "may be years old; `live`: as it happened. Events written before this field read as `live`."
        ),
    )


class CredentialIssuedMessage(CloudEvent):
    TYPE: ClassVar[str] = "pl.ebackpack.credential.issued.v1"
    data: CredentialIssued


class CredentialRevoked(BaseModel):
    credential_id: str
    learner_id: int
    verification_code: str
    reason: str = Field(description="Shown on the verification page and in the revocation lists.")
    revoked_at: datetime


class CredentialRevokedMessage(CloudEvent):
    TYPE: ClassVar[str] = "pl.ebackpack.credential.revoked.v1"
    data: CredentialRevoked


class CredentialExpired(BaseModel):
    credential_id: str
    learner_id: int
    verification_code: str
    valid_until: datetime


class CredentialExpiredMessage(CloudEvent):
    TYPE: ClassVar[str] = "pl.ebackpack.credential.expired.v1"
    data: CredentialExpired


class CredentialErased(BaseModel):
    """The learner's personal data is gone (Moodle deleted the user): the credential still verifies
    (status, achievement, dates) but names no one. Delete what you keep about this learner and credential;
    the credential's earlier events stay in the topic's history."""

    credential_id: str
    learner_id: int
    verification_code: str
    erased_at: datetime


class CredentialErasedMessage(CloudEvent):
    TYPE: ClassVar[str] = "pl.ebackpack.credential.erased.v1"
    data: CredentialErased
