"""What the issuer announces: credential issued, revoked and expired events, certificate render requests,
and the outbox rows that carry them to their topics (the agent's relay sends them).

Event ids are derived from the credential (and for a re-render from its run), so an event saved twice is
one event to every consumer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypedDict

from ebackpack.adapters.persistence.tables import AwardRow, Course, Learner, OutboxRow
from ebackpack.config import Settings
from ebackpack.domain.credentials.urls import PublicUrls
from ebackpack.domain.rules import IssuerProfile
from schemas import Achievement, CertificateRenderRequest, CertificateRenderRequestMessage, deterministic_id
from schemas import credentials as events

from .domain import Award

SOURCE = "ebackpack/issuer"
Announcement = (
    events.CredentialIssuedMessage
    | CertificateRenderRequestMessage
    | events.CredentialRevokedMessage
    | events.CredentialExpiredMessage
)


class Envelope(TypedDict):
    """What every issuer event carries beside its data."""

    id: str
    source: str
    subject: str
    time: datetime


class CredentialRef(TypedDict):
    """The credential an event is about, as every credential event names it."""

    credential_id: str
    learner_id: int
    verification_code: str


def envelope(kind: str, credential_id: str, time: datetime, *more_of_id: object) -> Envelope:
    """An event about one credential: its id derived from the kind, the credential and `more_of_id`."""
    event_id = deterministic_id(kind, credential_id, *more_of_id)
    return Envelope(id=event_id, source=SOURCE, subject=credential_id, time=time)


def credential_ref(award: Award | AwardRow) -> CredentialRef:
    return CredentialRef(
        credential_id=award.credential_id,
        learner_id=award.learner_id,
        verification_code=award.verification_code,
    )


def credential_issued(
    award: Award, valid_until: datetime | None, formats: list[str], settings: Settings, urls: PublicUrls
) -> events.CredentialIssuedMessage:
    rule = award.rule
    return events.CredentialIssuedMessage.build(
        **envelope("credential.issued", award.credential_id, award.issued_on),
        data=events.CredentialIssued(
            **credential_ref(award),
            course_id=award.course_id,
            achievement=Achievement.model_validate(rule, from_attributes=True),  # the rule's own fields
            issued_on=award.issued_on,
            verify_url=settings.verify_url(award.verification_code),
            badge=rule.badge,
            certificate=rule.certificate,
            valid_until=valid_until,
            assertion_url=urls.ob2_assertion(award.verification_code) if rule.badge else None,
            formats=formats,
            origin=award.origin,
        ),
    )


def render_request(
    award: Award,
    learner: Learner,
    course: Course,
    credential_json: str | None,
    awarding_body: IssuerProfile,
    settings: Settings,
    rerun: str | None = None,
) -> CertificateRenderRequestMessage:
    """What the renderer needs to make the certificate's PDF; `rerun` names a re-render (after a template
    change), which is a new request even for the same template."""
    lang = learner.lang if learner.lang in ("pl", "en") else award.rule.language
    micro = award.rule.microcredential
    template = award.rule.certificate_template
    return CertificateRenderRequestMessage.build(
        **envelope(
            "certificate.render_requested",
            award.credential_id,
            award.issued_on,
            template,
            *([rerun] if rerun else []),
        ),
        data=CertificateRenderRequest(
            credential_id=award.credential_id,
            verification_code=award.verification_code,
            verify_url=settings.verify_url(award.verification_code),
            learner_name=f"{learner.firstname} {learner.lastname}",
            course_name=course.fullname,
            achievement_name=award.rule.name,
            achievement_description=award.rule.description,
            issued_on=award.issued_on,
            awarding_body=awarding_body.name,
            template=template,
            language=lang,
            credential_json=credential_json,
            learning_outcomes=micro.learning_outcomes,
            ects=micro.ects,
            hours=micro.hours,
            eqf_level=micro.eqf_level,
            rerender=rerun is not None,
        ),
    )


def credential_revoked(award: AwardRow, now: datetime) -> events.CredentialRevokedMessage:
    return events.CredentialRevokedMessage.build(
        **envelope("credential.revoked", award.credential_id, now),
        data=events.CredentialRevoked(
            **credential_ref(award), reason=award.revocation_reason or "", revoked_at=now
        ),
    )


def credential_expired(
    award: AwardRow, valid_until: datetime, now: datetime
) -> events.CredentialExpiredMessage:
    return events.CredentialExpiredMessage.build(
        **envelope("credential.expired", award.credential_id, now),
        data=events.CredentialExpired(**credential_ref(award), valid_until=valid_until),
    )


def outbox_row(
    settings: Settings, topic: str, key: str, message: Announcement, credential_id: str
) -> OutboxRow:
    """The event saved for the relay: `topic` is the topic's name before the installation's prefix."""
    return OutboxRow(
        event_id=message.id,
        credential_id=credential_id,
        topic=settings.topic(topic),
        key=key,
        payload=message.model_dump_json(),
        created_at=datetime.now(UTC),
    )
