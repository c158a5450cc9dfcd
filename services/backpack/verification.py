"""Public verification of a credential by its printed code: the target of every certificate's QR code."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy.orm import Session

from ebackpack.adapters.certificate_reads import CertificateReads
from ebackpack.adapters.credential_store import award_by_code, status_of
from ebackpack.adapters.persistence.tables import CertificateRow, Course, Learner
from ebackpack.domain.credentials.facts import as_utc


class CertificateInfo(BaseModel):
    version: int = 1  # 1 = first rendered
    sha256: str
    size: int
    rendered_at: datetime
    template: str = "default"


class Verification(BaseModel):
    """What anyone holding the code (the QR code) sees. No credential or learner id: they are UUIDv5 of
    the site, the Moodle user id and the rule, from which the user id falls out by trying them all."""

    code: str
    status: str  # "valid" | "revoked" | "expired" | "unknown"
    learner_name: str | None = None
    achievement: str | None = None
    course: str | None = None
    issued_on: datetime | None = None
    valid_until: datetime | None = None
    revoked_on: datetime | None = None
    revocation_reason: str | None = None
    certificate: CertificateInfo | None = None  # the current version
    earlier_versions: list[CertificateInfo] = []  # newest first: a printed copy may be one of these


def verify(session: Session, code: str, now: datetime | None = None) -> Verification:
    award = award_by_code(session, code)
    if award is None:
        return Verification(code=code, status="unknown")
    learner = session.get(Learner, award.learner_id)
    course = session.get(Course, award.course_id)
    versions = _versions(CertificateReads(session).versions(award.credential_id))
    return Verification(
        code=award.verification_code,
        status=status_of(award, now or datetime.now(UTC)),
        learner_name=f"{learner.firstname} {learner.lastname}" if learner else None,
        achievement=award.achievement_name,
        course=course.fullname if course else None,
        issued_on=as_utc(award.issued_on),
        valid_until=as_utc(award.valid_until) if award.valid_until else None,
        revoked_on=as_utc(award.revoked_at) if award.revoked_at else None,
        revocation_reason=award.revocation_reason,
        certificate=versions[0] if versions else None,
        earlier_versions=versions[1:],
    )


def _versions(rows: list[CertificateRow]) -> list[CertificateInfo]:
    """Newest first, numbered in the order they were first stored (row ids only grow)."""
    numbers = {row.id: n for n, row in enumerate(sorted(rows, key=lambda r: r.id), 1)}
    return [
        CertificateInfo(
            version=numbers[r.id],
            sha256=r.sha256,
            size=r.size,
            rendered_at=as_utc(r.rendered_at),
            template=r.template,
        )
        for r in rows
    ]
