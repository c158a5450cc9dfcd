"""Public verification of a credential by its printed code: the target of every certificate's QR code."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from ebackpack.persistence.tables import AwardRow, Course, Learner
from services.renderer.repository import CertificateRepository


class CertificateInfo(BaseModel):
    sha256: str
    size: int
    rendered_at: datetime


class Verification(BaseModel):
    code: str
    status: str  # "valid" | "unknown" (revoked / expired come with the credentials issue)
    credential_id: str | None = None
    learner_name: str | None = None
    achievement: str | None = None
    course: str | None = None
    issued_on: datetime | None = None
    certificate: CertificateInfo | None = None


def normalize_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def verify(session: Session, code: str) -> Verification:
    wanted = normalize_code(code)
    formatted = "-".join(wanted[i:i + 4] for i in range(0, len(wanted), 4))
    award = session.scalars(select(AwardRow).where(AwardRow.verification_code == formatted)).one_or_none()
    if award is None:
        return Verification(code=code, status="unknown")
    learner = session.get(Learner, award.learner_id)
    course = session.get(Course, award.course_id)
    cert = CertificateRepository(session).latest(award.credential_id)
    return Verification(
        code=award.verification_code,
        status="valid" if award.status == "issued" else award.status,
        credential_id=award.credential_id,
        learner_name=f"{learner.firstname} {learner.lastname}" if learner else None,
        achievement=award.achievement_name,
        course=course.fullname if course else None,
        issued_on=award.issued_on,
        certificate=CertificateInfo(sha256=cert.sha256, size=cert.size, rendered_at=cert.rendered_at)
        if cert else None,
    )
