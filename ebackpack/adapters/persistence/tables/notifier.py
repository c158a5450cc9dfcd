"""The notifier's tables: one row per notification and channel, learners' preferences, and the
certificate PDFs it learnt of from certificates.rendered."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


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
