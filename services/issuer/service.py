"""The issuer's service layer: one Moodle event in, the events to announce out.

parse -> is it a learner completion with a rule? -> persist the award and its outbox atomically
-> return the unsent outbox events (also on redelivery: that is how a crash between "saved" and
"announced" is repaired).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.config import Settings
from ebackpack.persistence.tables import AwardRow, OutboxRow
from ebackpack.streaming.errors import TransientError, parse_message
from ebackpack.streaming.topics import CREDENTIALS, RENDER_REQUESTS
from schemas import (
    Achievement,
    CertificateRenderRequest,
    CertificateRenderRequestMessage,
    CredentialIssued,
    CredentialIssuedMessage,
    MoodleEventMessage,
    deterministic_id,
)

from .domain import Award, NotALearnerCompletion, decide_award
from .repository import AwardRepository
from .rules import RuleBook

SOURCE = "ebackpack/issuer"
Announcement = CredentialIssuedMessage | CertificateRenderRequestMessage


def parse_moodle_message(raw: bytes) -> MoodleEventMessage:
    return parse_message(MoodleEventMessage, raw)


class IssuerService:
    def __init__(self, sessions: sessionmaker[Session], rules: RuleBook, settings: Settings):
        self.sessions = sessions
        self.rules = rules
        self.settings = settings

    def handle(self, raw: bytes) -> list[OutboxRow]:
        """Returns the events still to announce for the award this message earns (often none)."""
        message = parse_moodle_message(raw)
        try:
            award = decide_award(message.data, message.id, self.rules, self.settings.site_id)
        except NotALearnerCompletion:
            return []
        with self.sessions.begin() as session:
            repo = AwardRepository(session)
            if repo.get(award.credential_id) is None:
                try:
                    with session.begin_nested():
                        repo.add(self._award_row(award), self._announcements(repo, award))
                except IntegrityError:
                    pass  # a concurrent worker saved the same award first: same id, nothing lost
            return repo.pending_events(award.credential_id)

    def _award_row(self, award: Award) -> AwardRow:
        return AwardRow(
            credential_id=award.credential_id, verification_code=award.verification_code,
            learner_id=award.learner_id, course_id=award.course_id, rule_id=award.rule.id,
            achievement_name=award.rule.name, issued_on=award.issued_on, status="issued",
            source_event_id=award.source_event_id, created_at=datetime.now(UTC),
        )

    def _announcements(self, repo: AwardRepository, award: Award) -> list[OutboxRow]:
        events = [self._outbox(CREDENTIALS, str(award.learner_id), self._issued(award), award)]
        if award.rule.certificate:
            request = self._render_request(repo, award)
            events.append(self._outbox(RENDER_REQUESTS, award.credential_id, request, award))
        return events

    def _issued(self, award: Award) -> CredentialIssuedMessage:
        rule = award.rule
        return CredentialIssuedMessage.build(
            id=deterministic_id("credential.issued", award.credential_id), source=SOURCE,
            subject=award.credential_id, time=award.issued_on,
            data=CredentialIssued(
                credential_id=award.credential_id, learner_id=award.learner_id, course_id=award.course_id,
                achievement=Achievement(id=rule.id, name=rule.name, description=rule.description,
                                        criteria=rule.criteria, badge_image=rule.badge_image),
                issued_on=award.issued_on, verification_code=award.verification_code,
                verify_url=self.settings.verify_url(award.verification_code),
                badge=rule.badge, certificate=rule.certificate,
            ),
        )

    def _render_request(self, repo: AwardRepository, award: Award) -> CertificateRenderRequestMessage:
        learner, course = repo.learner(award.learner_id), repo.course(award.course_id)
        if learner is None or course is None:
            # Profiles may arrive after the completion: retried with backoff, then dead-lettered.
            missing = f"learner {award.learner_id}" if learner is None else f"course {award.course_id}"
            raise TransientError(f"no profile for {missing}: cannot name the certificate yet")
        lang = learner.lang if learner.lang in ("pl", "en") else award.rule.language
        return CertificateRenderRequestMessage.build(
            id=deterministic_id("certificate.render_requested", award.credential_id,
                                award.rule.certificate_template),
            source=SOURCE, subject=award.credential_id, time=award.issued_on,
            data=CertificateRenderRequest(
                credential_id=award.credential_id, verification_code=award.verification_code,
                verify_url=self.settings.verify_url(award.verification_code),
                learner_name=f"{learner.firstname} {learner.lastname}", course_name=course.fullname,
                achievement_name=award.rule.name, achievement_description=award.rule.description,
                issued_on=award.issued_on, awarding_body=self.rules.issuer.name,
                template=award.rule.certificate_template, language=lang,
            ),
        )

    def _outbox(self, topic: str, key: str, message: Announcement, award: Award) -> OutboxRow:
        return OutboxRow(event_id=message.id, credential_id=award.credential_id,
                         topic=self.settings.topic(topic), key=key, payload=message.model_dump_json(),
                         created_at=datetime.now(UTC))

    def mark_sent(self, event_ids: list[str]) -> None:
        with self.sessions.begin() as session:
            AwardRepository(session).mark_sent(event_ids)

    def stale_events(self, older_than_seconds: float) -> list[OutboxRow]:
        """Saved but never announced (the worker died in between): the relay sends them."""
        cutoff = datetime.fromtimestamp(datetime.now(UTC).timestamp() - older_than_seconds, UTC)
        with self.sessions() as session:
            return AwardRepository(session).pending_events(older_than=cutoff)
