"""The issuer's tables: learner and course profiles, awards and their signed documents, the outbox of
events to announce, and completions parked until a profile arrives. The backpack and the notifier read
awards and profiles (the credential store); only the issuer writes them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


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
    # The lane it came on (`live`, `backfill`): the credential issued when it resumes says so.
    origin: Mapped[str] = mapped_column(String(16), default="live", server_default="live")
