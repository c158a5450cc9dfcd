"""The database schema. Correctness-critical state lives here, not in Kafka or faust tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
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
    __table_args__ = (UniqueConstraint("learner_id", "rule_id", name="uq_awards_learner_rule"),
                      Index("uq_awards_status_entry", "status_list", "status_index", unique=True))
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
