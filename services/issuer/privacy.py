"""Right to erasure: when Moodle deletes a user, their personal data leaves the e-Backpack.

Erased: the profile (name, e-mail, language), the recipient hash and salt of each credential, the signed
credential documents (they name the learner), certificate PDFs (rows and S3 objects), uploaded
attestations (rows and S3 objects), public links, and the credentials' queued events.
Kept, because the public must still be able to check a credential it was shown: the award row without
personal data (verification code, achievement, course, dates, status, revocation and its reason) and
its bit in the status list. The verification page then names no one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ebackpack.adapters.persistence.tables import (
    AttestationRow,
    AwardRow,
    CertificateRow,
    Learner,
    NotificationPreferenceRow,
    NotificationRow,
    OutboxRow,
    ShareRow,
    SignedCredentialRow,
)


@dataclass
class Erasure:
    learner_id: int
    object_keys: list[str] = field(default_factory=list)  # S3 objects to delete before the rows go
    credentials: list[str] = field(default_factory=list)


def plan_erasure(session: Session, learner_id: int) -> Erasure:
    credentials = list(
        session.scalars(select(AwardRow.credential_id).where(AwardRow.learner_id == learner_id))
    )
    pdfs = session.scalars(
        select(CertificateRow.object_key).where(CertificateRow.credential_id.in_(credentials))
    )
    uploads = session.scalars(
        select(AttestationRow.object_key).where(
            AttestationRow.learner_id == learner_id, AttestationRow.object_key.is_not(None)
        )
    )
    keys = [key for key in (*pdfs, *uploads) if key]
    return Erasure(learner_id, keys, credentials)


def erase_rows(session: Session, erasure: Erasure) -> None:
    """Idempotent: erasing an erased learner changes nothing."""
    credentials = erasure.credentials
    for table, column in (
        (SignedCredentialRow, SignedCredentialRow.credential_id),
        (CertificateRow, CertificateRow.credential_id),
        (OutboxRow, OutboxRow.credential_id),
        (ShareRow, ShareRow.credential_id),
    ):
        session.execute(delete(table).where(column.in_(credentials)))
    session.execute(delete(AttestationRow).where(AttestationRow.learner_id == erasure.learner_id))
    for row in (NotificationRow, NotificationPreferenceRow):
        session.execute(delete(row).where(row.learner_id == erasure.learner_id))
    session.execute(delete(Learner).where(Learner.id == erasure.learner_id))
    for award in session.scalars(select(AwardRow).where(AwardRow.learner_id == erasure.learner_id)):
        award.recipient_salt = award.recipient_hash = None
