"""The database schema. Correctness-critical state lives here, not in Kafka or faust tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Learner(Base):
    __tablename__ = "learners"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    firstname: Mapped[str] = mapped_column(String(200))
    lastname: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    lang: Mapped[str] = mapped_column(String(8), default="en")


class Course(Base):
    __tablename__ = "courses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    fullname: Mapped[str] = mapped_column(String(500))
    shortname: Mapped[str] = mapped_column(String(200))


class AwardRow(Base):
    """One credential. The unique constraints make redelivery and replay harmless."""

    __tablename__ = "awards"
    __table_args__ = (
        UniqueConstraint("learner_id", "rule_id", name="uq_awards_learner_rule"),
        Index("uq_awards_status_entry", "status_list", "status_index", unique=True),
    )
    credential_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    verification_code: Mapped[str] = mapped_column(String(20), unique=True)
    learner_id: Mapped[int] = mapped_column(Integer, index=True)
    course_id: Mapped[int] = mapped_column(Integer)
    rule_id: Mapped[str] = mapped_column(String(100))
    achievement_name: Mapped[str] = mapped_column(String(500))
    issued_on: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20), default="issued")
    source_event_id: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Credential data (schema 0002; empty for awards saved before signed credentials existed).
    recipient_salt: Mapped[str | None] = mapped_column(String(32), nullable=True)
    recipient_hash: Mapped[str | None] = mapped_column(String(80), nullable=True)
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status_list: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class SignedCredentialRow(Base):
    """A signed Open Badges 3.0 credential of an award, one row per proof format. Never changes."""

    __tablename__ = "signed_credentials"
    credential_id: Mapped[str] = mapped_column(ForeignKey("awards.credential_id"), primary_key=True)
    format: Mapped[str] = mapped_column(String(20), primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    verification_method: Mapped[str] = mapped_column(String(300))
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OutboxRow(Base):
    """Events saved in the same transaction as the award; sent (and marked) after the broker acks."""

    __tablename__ = "outbox"
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    credential_id: Mapped[str] = mapped_column(String(36), index=True)
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)


class CertificateRow(Base):
    """A stored PDF version of a credential's certificate. Object keys are immutable."""

    __tablename__ = "certificates"
    __table_args__ = (UniqueConstraint("credential_id", "sha256", name="uq_certificates_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    credential_id: Mapped[str] = mapped_column(ForeignKey("awards.credential_id"), index=True)
    bucket: Mapped[str] = mapped_column(String(200))
    object_key: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    template: Mapped[str] = mapped_column(String(100))
    rendered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AttestationRow(Base):
    """An external attestation a learner uploaded: the raw object in S3, then the importer's record.

    `state`: received (bytes stored, waiting for the importer) -> imported | rejected. The normalized
    fields are empty until imported; `rejection_reason` says why an upload was not imported.
    """

    __tablename__ = "attestations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    learner_id: Mapped[int] = mapped_column(Integer, index=True)
    state: Mapped[str] = mapped_column(String(20), default="received", index=True)
    object_key: Mapped[str | None] = mapped_column(String(300), nullable=True)  # None for a submitted URL
    submitted_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    filename: Mapped[str | None] = mapped_column(String(255), nullable=True)
    media_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)
    event_id: Mapped[str | None] = mapped_column(String(36), nullable=True)  # of the last result event
    rejection_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    source_format: Mapped[str | None] = mapped_column(String(30), nullable=True)
    verification_status: Mapped[str | None] = mapped_column(String(60), nullable=True)
    # The normalized record (services.importer.domain.Attestation) as JSON, original JSON included.
    record: Mapped[str | None] = mapped_column(Text, nullable=True)


class ShareRow(Base):
    """A public link to one credential that its learner created; it expires and can be withdrawn."""

    __tablename__ = "shares"
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    credential_id: Mapped[str] = mapped_column(ForeignKey("awards.credential_id"), index=True)
    learner_id: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class GatewayEventRow(Base):
    """A Moodle event the gateway has published: the webhook and the poller publish each one once."""

    __tablename__ = "gateway_events"
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    site: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(20))  # webhook | poller | import
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class GatewayCheckpointRow(Base):
    """Where a poller or an import stands, saved after each published batch."""

    __tablename__ = "gateway_checkpoints"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)  # Moodle log ids outgrow 32 bits
    state: Mapped[str] = mapped_column(Text, default="{}")  # JSON: e.g. ids seen in the re-scan window
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NotificationRow(Base):
    """One message of the notifier to one learner on one channel: its idempotency record and retry schedule.

    Keyed by (event id, channel): a redelivered or replayed event finds its row and sends nothing more.
    `state`: pending -> sending (committed BEFORE the channel is called) -> sent; a failure -> failed with
    `next_attempt_at` (exponential backoff) -> sending ...; after the last attempt, or a permanent refusal,
    gave-up (its dead letter not yet acknowledged) -> dead. `skipped`: nothing to send (turned off by the
    learner, no address, revoked before it went out). See docs/notifier.md.
    """

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_due", "state", "next_attempt_at"),)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)  # email | moodle
    kind: Mapped[str] = mapped_column(String(20))  # issued | revoked | expiry
    learner_id: Mapped[int] = mapped_column(Integer, index=True)
    credential_id: Mapped[str] = mapped_column(String(36), index=True)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # What to say (services.notifier.domain.Notice as JSON): a retry needs no Kafka message.
    payload: Mapped[str] = mapped_column(Text)


class NotificationPreferenceRow(Base):
    """A learner's choice for one kind of message on one channel. No row = on (the default)."""

    __tablename__ = "notification_preferences"
    learner_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NotifierPdfRow(Base):
    """A certificate PDF the notifier knows is stored, from the renderer's `certificates.rendered` events
    (the notifier's own record: an "issued" message linking to the PDF waits until its credential is here).
    One row per credential, whatever the number of versions; no personal data."""

    __tablename__ = "notifier_pdfs"
    credential_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    rendered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # the first version's


class WebSessionRow(Base):
    """A signed-in backpack session. The cookie holds a random id; only its SHA-256 is stored, so the
    table cannot be turned back into cookies. Deleted at logout; expired ones are deleted at sign-ins."""

    __tablename__ = "web_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    learner_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ParkedMessageRow(Base):
    """A Moodle event the issuer cannot act on yet: the learner's (or course's) profile has not arrived.

    Parked per learner, in arrival order (`id`): once a learner has a parked message, every later one of
    theirs is parked behind it, so their order holds while other learners' events flow on. Resumed when
    the profile arrives (the issuer's profile agents) or by the issuer's timer; dropped with the learner's
    erasure. `payload` is the event as it came (JSON text), so resuming needs no Kafka message.
    """

    __tablename__ = "parked_messages"
    __table_args__ = (UniqueConstraint("learner_id", "event_id", name="uq_parked_learner_event"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    learner_id: Mapped[int] = mapped_column(Integer, index=True)
    course_id: Mapped[int] = mapped_column(Integer, index=True)
    event_id: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(300))  # topic/partition/offset, for the operator
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    parked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
