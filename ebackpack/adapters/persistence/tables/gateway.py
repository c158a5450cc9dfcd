"""The gateway's tables: the ledger of Moodle events published, and the log-store poller's checkpoints."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


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
