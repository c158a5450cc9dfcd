"""The backpack's tables: public share links and server-side web sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class ShareRow(Base):
    """A public link to one credential that its learner created; it expires and can be withdrawn."""

    __tablename__ = "shares"
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    credential_id: Mapped[str] = mapped_column(ForeignKey("awards.credential_id"), index=True)
    learner_id: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebSessionRow(Base):
    """A signed-in backpack session. The cookie holds a random id; only its SHA-256 is stored, so the
    table cannot be turned back into cookies. Deleted at logout; expired ones are deleted at sign-ins."""

    __tablename__ = "web_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    learner_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class WalletOfferRow(Base):
    """An OpenID4VCI credential offer of one learner's credential to a wallet: single use, expiring. Only
    SHA-256 digests of the pre-authorized code, the transaction code and the access token are stored."""

    __tablename__ = "wallet_offers"
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    credential_id: Mapped[str] = mapped_column(ForeignKey("awards.credential_id"), index=True)
    learner_id: Mapped[int] = mapped_column(Integer, index=True)
    configurations: Mapped[str] = mapped_column(String(200))  # offered configuration ids, space-separated
    delivered: Mapped[str] = mapped_column(String(200), default="")  # those already issued, space-separated
    tx_code_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failed_tx_codes: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(20))  # learner, admin, cli
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    redeemed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    token_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WalletCopyRow(Base):
    """A copy of a credential bound to a wallet's key: which learner, which holder DID, in which format,
    when. It carries the credential's own status entry, so revoking the credential revokes it too."""

    __tablename__ = "wallet_copies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    credential_id: Mapped[str] = mapped_column(ForeignKey("awards.credential_id"), index=True)
    learner_id: Mapped[int] = mapped_column(Integer, index=True)
    holder: Mapped[str] = mapped_column(String(1000))
    configuration: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class VcapiCredentialRow(Base):
    """A credential signed through the VC-API with a status entry: its place on one of the VC-API's
    status lists (numbered from VCAPI_LISTS_FROM, each of one issuer, apart from the awards' lists)."""

    __tablename__ = "vcapi_credentials"
    __table_args__ = (UniqueConstraint("status_list", "status_index"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    credential_id: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    issuer: Mapped[str] = mapped_column(String(200), index=True)
    status_list: Mapped[int] = mapped_column(Integer, index=True)
    status_index: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
