"""What the pages show, read from SQL in one place: a learner's credentials, one credential, the courses.

Every lookup for a learner filters by that learner: another learner's code looks like a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ebackpack.adapters.certificate_reads import CertificateReads
from ebackpack.adapters.credential_store import normalize_code, status_of
from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow, Course, Learner
from ebackpack.domain.credentials.facts import as_utc
from ebackpack.domain.credentials.urls import PublicUrls
from ebackpack.domain.rules import AwardRule, RuleBook


@dataclass(frozen=True)
class CredentialView:
    award: AwardRow
    rule: AwardRule | None
    course_name: str
    learner_name: str
    status: str  # valid | revoked | expired
    certificate: CertificateRow | None  # the current PDF version

    @property
    def code(self) -> str:
        return self.award.verification_code

    @property
    def issued_on(self) -> datetime:
        return as_utc(self.award.issued_on)

    @property
    def valid_until(self) -> datetime | None:
        return as_utc(self.award.valid_until) if self.award.valid_until else None

    @property
    def revoked_on(self) -> datetime | None:
        return as_utc(self.award.revoked_at) if self.award.revoked_at else None

    @property
    def has_certificate(self) -> bool:
        return bool(self.rule and self.rule.certificate)

    @property
    def has_badge(self) -> bool:
        return bool(self.rule and self.rule.badge)


@dataclass(frozen=True)
class CourseSummary:
    course_id: int
    name: str
    awards: int
    revoked: int
    certificates: int


class BackpackViews:
    def __init__(self, session: Session, rules: RuleBook, urls: PublicUrls) -> None:
        self.session, self.rules, self.urls = session, rules, urls
        self._rules = {rule.id: rule for rule in rules.rules}

    def credentials(self, learner_id: int, now: datetime | None = None) -> list[CredentialView]:
        awards = self.session.scalars(
            select(AwardRow).where(AwardRow.learner_id == learner_id).order_by(AwardRow.issued_on.desc())
        )
        return [self._view(award, now) for award in awards]

    def credential(
        self, learner_id: int | None, code: str, now: datetime | None = None
    ) -> CredentialView | None:
        """The learner's own credential by code (None for anyone else's); `learner_id=None`: any (admin)."""
        query = select(AwardRow).where(AwardRow.verification_code == normalize_code(code))
        if learner_id is not None:
            query = query.where(AwardRow.learner_id == learner_id)
        award = self.session.scalars(query).one_or_none()
        return self._view(award, now) if award else None

    def by_id(self, credential_id: str, now: datetime | None = None) -> CredentialView | None:
        award = self.session.get(AwardRow, credential_id)
        return self._view(award, now) if award else None

    def course_credentials(self, course_id: int, now: datetime | None = None) -> list[CredentialView]:
        awards = self.session.scalars(
            select(AwardRow).where(AwardRow.course_id == course_id).order_by(AwardRow.verification_code)
        )
        return [self._view(award, now) for award in awards]

    def courses(self) -> list[CourseSummary]:
        rows = self.session.execute(
            select(AwardRow.course_id, func.count(), func.count(AwardRow.revoked_at))
            .group_by(AwardRow.course_id)
            .order_by(AwardRow.course_id)
        ).all()
        names = {c.id: c.fullname for c in self.session.scalars(select(Course))}
        pdf_counts = self.session.execute(
            select(AwardRow.course_id, func.count(func.distinct(CertificateRow.credential_id)))
            .join(CertificateRow, CertificateRow.credential_id == AwardRow.credential_id)
            .group_by(AwardRow.course_id)
        )
        pdfs = {int(course): int(count) for course, count in pdf_counts}
        return [
            CourseSummary(
                course_id, names.get(course_id, f"#{course_id}"), awards, revoked, pdfs.get(course_id, 0)
            )
            for course_id, awards, revoked in rows
        ]

    def certificates_to_rerender(self, course_id: int) -> int:
        """How many certificates a re-render of the course asks for: those of its awards that are not
        revoked and whose rule gives a certificate (what the issuer re-renders)."""
        with_certificate = [rule.id for rule in self.rules.rules if rule.certificate]
        query = select(func.count()).where(
            AwardRow.course_id == course_id,
            AwardRow.status != "revoked",
            AwardRow.rule_id.in_(with_certificate),
        )
        return int(self.session.scalar(query) or 0)

    def course_name(self, course_id: int) -> str | None:
        course = self.session.get(Course, course_id)
        return course.fullname if course else None

    def learner_names(self) -> list[tuple[int, str]]:
        learners = self.session.scalars(select(Learner).order_by(Learner.lastname, Learner.firstname))
        return [(learner.id, f"{learner.firstname} {learner.lastname}") for learner in learners]

    def _view(self, award: AwardRow, now: datetime | None) -> CredentialView:
        course = self.session.get(Course, award.course_id)
        learner = self.session.get(Learner, award.learner_id)
        return CredentialView(
            award=award,
            rule=self._rules.get(award.rule_id),
            course_name=course.fullname if course else f"#{award.course_id}",
            learner_name=f"{learner.firstname} {learner.lastname}" if learner else "",
            status=status_of(award, now or datetime.now(UTC)),
            certificate=CertificateReads(self.session).latest(award.credential_id),
        )
