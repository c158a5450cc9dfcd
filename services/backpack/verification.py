"""Public verification of a credential by its printed code: the target of every certificate's QR code."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy.orm import Session

from ebackpack.credentials.facts import as_utc
from ebackpack.credentials.store import normalize_code, status_of
from ebackpack.persistence.tables import AwardRow, Course, Learner
from services.renderer.repository import CertificateRepository


class CertificateInfo(BaseModel):
    sha256: str
    size: int
    rendered_at: datetime


class Verification(BaseModel):
    code: str
    status: str  # "valid" | "revoked" | "expired" | "unknown"
    credential_id: str | None = None
    learner_name: str | None = None
    achievement: str | None = None
    course: str | None = None
    issued_on: datetime | None = None
    valid_until: datetime | None = None
    revoked_on: datetime | None = None
    revocation_reason: str | None = None
    certificate: CertificateInfo | None = None


def verify(session: Session, code: str, now: datetime | None = None) -> Verification:
    award = session.query(AwardRow).filter_by(verification_code=normalize_code(code)).one_or_none()
    if award is None:
        return Verification(code=code, status="unknown")
    learner = session.get(Learner, award.learner_id)
    course = session.get(Course, award.course_id)
    cert = CertificateRepository(session).latest(award.credential_id)
    return Verification(
        code=award.verification_code,
        status=status_of(award, now or datetime.now(UTC)),
        credential_id=award.credential_id,
        learner_name=f"{learner.firstname} {learner.lastname}" if learner else None,
        achievement=award.achievement_name,
        course=course.fullname if course else None,
        issued_on=as_utc(award.issued_on),
        valid_until=as_utc(award.valid_until) if award.valid_until else None,
        revoked_on=as_utc(award.revoked_at) if award.revoked_at else None,
        revocation_reason=award.revocation_reason,
        certificate=CertificateInfo(sha256=cert.sha256, size=cert.size, rendered_at=cert.rendered_at)
        if cert else None,
    )
