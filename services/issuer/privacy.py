"""Right to erasure: when Moodle deletes a user, their personal data leaves the e-Backpack.

Each service erases what it owns. The issuer, in one transaction: the learner's profile (name, e-mail,
language), the recipient hash and salt of each credential, the signed credential documents (they name
the learner) and the credentials' queued events; the learner's parked completions go in the same
transaction (service.py). In that transaction it saves in its outbox, so the erasure cannot be lost
between the two, the events that tell the others:
- `learner.erased` (internal, `learners.erased`): the renderer deletes the certificate PDFs (objects and
  rows), the importer the uploaded attestations (objects and rows), the notifier the learner's messages
  and preferences, each in its own `erasure.py`;
- one public `credential.erased` per credential on `credentials`, for downstream consumers.
The backpack has no worker: its sessions and public links end with the learner's profile (a learner
without one cannot sign in either), and its rows are cleaned up at sign-ins (services/backpack); the
copies of credentials in wallets (which learner, which holder DID) and open wallet offers are deleted
in this transaction.

Kept, because the public must still be able to check a credential it was shown: the award row without
personal data (verification code, achievement, course, dates, status, revocation and its reason) and
its bit in the status list. The verification page then names no one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ebackpack.adapters.persistence.tables import (
    AwardRow,
    Learner,
    OutboxRow,
    SignedCredentialRow,
    WalletCopyRow,
    WalletOfferRow,
)
from ebackpack.streaming.topics import CREDENTIALS, LEARNERS_ERASED
from schemas import (
    CloudEvent,
    CredentialErased,
    CredentialErasedMessage,
    LearnerErased,
    LearnerErasedMessage,
    deterministic_id,
)

NOT_ONE_CREDENTIAL = ""  # the outbox's credential id of an event about the learner as a whole


@dataclass(frozen=True)
class Erasure:
    """What erasing a learner comes to: their credentials (id -> verification code, oldest first), and
    whether the erasure events are saved already (a redelivered user_deleted: nothing to announce)."""

    learner_id: int
    credentials: dict[str, str]
    announced: bool = False

    @property
    def learner_event_id(self) -> str:
        """Covers the credentials: one issued since an earlier erasure (it would need a new profile) gives
        a new `learner.erased`, the same ones the same id."""
        return deterministic_id("learner.erased", self.learner_id, *sorted(self.credentials))

    @property
    def event_ids(self) -> list[str]:
        return [self.learner_event_id, *(credential_erased_id(c) for c in self.credentials)]


def credential_erased_id(credential_id: str) -> str:
    return deterministic_id("credential.erased", credential_id)


def plan_erasure(session: Session, learner_id: int) -> Erasure:
    awards = session.execute(
        select(AwardRow.credential_id, AwardRow.verification_code)
        .where(AwardRow.learner_id == learner_id)
        .order_by(AwardRow.created_at)
    )
    plan = Erasure(learner_id, {credential_id: code for credential_id, code in awards})
    announced = session.get(OutboxRow, plan.learner_event_id) is not None
    return Erasure(learner_id, plan.credentials, announced)


def erase_rows(session: Session, erasure: Erasure) -> None:
    """The issuer's part, in the caller's transaction. Idempotent: erasing again changes nothing."""
    credentials = list(erasure.credentials)
    session.execute(delete(SignedCredentialRow).where(SignedCredentialRow.credential_id.in_(credentials)))
    # The credentials' other events (render requests name the learner) are not sent any more, and the
    # repair finds no render request to send again; the erasure events themselves stay.
    session.execute(
        delete(OutboxRow).where(
            OutboxRow.credential_id.in_(credentials), OutboxRow.event_id.not_in(erasure.event_ids)
        )
    )
    session.execute(delete(Learner).where(Learner.id == erasure.learner_id))
    # The backpack has no worker: the wallets its credentials went to (a holder DID is a personal
    # identifier) and its open offers go here, in the same transaction.
    for wallet_table in (WalletCopyRow, WalletOfferRow):
        session.execute(delete(wallet_table).where(wallet_table.learner_id == erasure.learner_id))
    for award in session.scalars(select(AwardRow).where(AwardRow.credential_id.in_(credentials))):
        award.recipient_salt = award.recipient_hash = None


def erasure_events(
    erasure: Erasure, *, topic: Callable[[str], str], source: str, now: datetime
) -> list[OutboxRow]:
    """`learner.erased` for the other services, then `credential.erased` per credential, as outbox rows
    (`topic` names a topic as the settings prefix it). Both topics are keyed by learner."""
    learner_id = erasure.learner_id
    learner = LearnerErasedMessage.build(
        id=erasure.learner_event_id,
        source=source,
        subject=str(learner_id),
        time=now,
        data=LearnerErased(learner_id=learner_id, credential_ids=list(erasure.credentials), erased_at=now),
    )
    events = [_outbox(topic(LEARNERS_ERASED), learner_id, learner, NOT_ONE_CREDENTIAL, now)]
    for credential_id, code in erasure.credentials.items():
        erased = CredentialErasedMessage.build(
            id=credential_erased_id(credential_id),
            source=source,
            subject=credential_id,
            time=now,
            data=CredentialErased(
                credential_id=credential_id, learner_id=learner_id, verification_code=code, erased_at=now
            ),
        )
        events.append(_outbox(topic(CREDENTIALS), learner_id, erased, credential_id, now))
    return events


def erase_learner(
    session: Session, learner_id: int, *, topic: Callable[[str], str], source: str, now: datetime
) -> list[OutboxRow]:
    """The whole of the issuer's part in the caller's transaction: plan, erase, and the events saved in
    the outbox unless they were before. Returns the events saved."""
    erasure = plan_erasure(session, learner_id)
    erase_rows(session, erasure)
    events = [] if erasure.announced else erasure_events(erasure, topic=topic, source=source, now=now)
    session.add_all(events)
    return events


def _outbox(topic: str, learner_id: int, message: CloudEvent, credential_id: str, now: datetime) -> OutboxRow:
    return OutboxRow(
        event_id=message.id,
        credential_id=credential_id,
        topic=topic,
        key=str(learner_id),  # one learner's events keep their order
        payload=message.model_dump_json(),
        created_at=now,
    )
