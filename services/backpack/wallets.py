"""A learner's credential into a wallet (OpenID4VCI 1.0, pre-authorized code flow): the offers, the
codes and tokens they are redeemed with, and the wallet-bound copies issued against them.

An offer names one credential and the configurations (formats) it may be delivered in; its
pre-authorized code is good for one access token, within the offer's lifetime; the token is good for
one credential per offered configuration, within TOKEN_SECONDS. The copy is the learner's Open Badges
3.0 credential with `credentialSubject.id` = the wallet key's DID and the credential's own status
entry, so revoking the credential revokes every copy. Copies are recorded (learner, holder DID, format,
time) and go when the learner is erased, as the learner's public links do.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from ebackpack.adapters.credential_store import award_by_code, status_of
from ebackpack.adapters.persistence.tables import AwardRow, Learner, WalletCopyRow, WalletOfferRow
from ebackpack.bootstrap import Platform
from ebackpack.domain.credentials import openid4vci as oid4vci
from ebackpack.domain.credentials.facts import as_utc
from ebackpack.domain.credentials.openid4vci import Openid4vciError
from ebackpack.domain.credentials.signer import DATA_INTEGRITY, JWT, CredentialSigner

DEFAULT_OFFER_SECONDS = 600
MAX_OFFER_SECONDS = 7 * 24 * 3600
TOKEN_SECONDS = 300
TX_CODE_LENGTH = 6
MAX_TX_CODE_ATTEMPTS = 5  # wrong transaction codes before the offer is spent
SIGNER_FORMAT = {oid4vci.JWT_VC: JWT, oid4vci.LDP_VC: DATA_INTEGRITY}


class OfferRefused(ValueError):
    """The credential cannot be offered (not found, revoked, expired, no signed form)."""


@dataclass(frozen=True)
class Offer:
    uri: str  # openid-credential-offer://?credential_offer=...
    offer: dict[str, Any]
    tx_code: str | None
    expires_at: datetime
    credential_id: str
    verification_code: str


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_in: int


class Wallets:
    """The offers and copies of one installation, within the caller's session (the caller commits)."""

    def __init__(self, session: Session, platform: Platform) -> None:
        self.session = session
        self.platform = platform
        self.public_url = platform.settings.public_url

    # -- offers --

    def offer(
        self,
        code_or_id: str,
        *,
        learner_id: int | None,
        created_by: str,
        configurations: Sequence[str] = (oid4vci.LDP_VC, oid4vci.JWT_VC),
        seconds: int = DEFAULT_OFFER_SECONDS,
        with_tx_code: bool = False,
        now: datetime | None = None,
    ) -> Offer:
        """A new offer of the credential (`learner_id`: it must be theirs; None: an operator's)."""
        now = now or datetime.now(UTC)
        unknown = [c for c in configurations if c not in oid4vci.CONFIGURATIONS]
        if unknown or not configurations:
            raise OfferRefused(
                f"unknown configuration(s) {unknown}; known: {', '.join(oid4vci.CONFIGURATIONS)}"
            )
        if not 60 <= seconds <= MAX_OFFER_SECONDS:
            raise OfferRefused(f"an offer lasts from 60 s to {MAX_OFFER_SECONDS} s, not {seconds} s")
        award = self.session.get(AwardRow, code_or_id) or award_by_code(self.session, code_or_id)
        if award is None or (learner_id is not None and award.learner_id != learner_id):
            raise OfferRefused(f"no credential with code or id {code_or_id!r}")
        self._check_issuable(award, now)
        offered = list(dict.fromkeys(configurations))  # each once, in the order asked
        expires = now + timedelta(seconds=seconds)
        code = oid4vci.new_secret()
        tx_code = oid4vci.new_tx_code(TX_CODE_LENGTH) if with_tx_code else None
        self.session.add(
            WalletOfferRow(
                code_hash=oid4vci.digest(code),
                credential_id=award.credential_id,
                learner_id=award.learner_id,
                configurations=" ".join(offered),
                delivered="",
                tx_code_hash=oid4vci.digest(tx_code) if tx_code else None,
                failed_tx_codes=0,
                created_by=created_by,
                created_at=now,
                expires_at=expires,
            )
        )
        offer = oid4vci.credential_offer(self.public_url, offered, code, TX_CODE_LENGTH if tx_code else None)
        return Offer(
            oid4vci.offer_uri(offer),
            offer,
            tx_code,
            expires,
            award.credential_id,
            award.verification_code,
        )

    def _check_issuable(self, award: AwardRow, now: datetime) -> None:
        status = status_of(award, now)
        if status != "valid":
            raise OfferRefused(f"the credential is {status}: it cannot go into a wallet")
        if self.session.get(Learner, award.learner_id) is None:
            raise OfferRefused("the credential's learner was erased")

    # -- token endpoint --

    def redeem(self, pre_authorized_code: str, tx_code: str | None, now: datetime | None = None) -> Token:
        """An access token for an offer's pre-authorized code: once, before the offer expires, with the
        right transaction code if the offer has one. Raises Openid4vciError `invalid_grant`."""
        now = now or datetime.now(UTC)
        row = self.session.get(WalletOfferRow, oid4vci.digest(pre_authorized_code or ""))
        if row is None or row.redeemed_at is not None or as_utc(row.expires_at) <= now:
            raise Openid4vciError("invalid_grant", "the pre-authorized code is unknown, used or expired")
        if row.tx_code_hash is not None:
            if row.failed_tx_codes >= MAX_TX_CODE_ATTEMPTS:
                raise Openid4vciError(
                    "invalid_grant", "too many wrong transaction codes: ask for a new offer"
                )
            if not tx_code or oid4vci.digest(tx_code) != row.tx_code_hash:
                row.failed_tx_codes += 1
                raise Openid4vciError("invalid_grant", "the transaction code is wrong")
        token = oid4vci.new_secret()
        # One redemption even when two requests race: only the update that finds it unredeemed wins.
        won = self.session.execute(
            update(WalletOfferRow)
            .where(WalletOfferRow.code_hash == row.code_hash, WalletOfferRow.redeemed_at.is_(None))
            .values(
                redeemed_at=now,
                token_hash=oid4vci.digest(token),
                token_expires_at=now + timedelta(seconds=TOKEN_SECONDS),
            )
        )
        if getattr(won, "rowcount", 0) != 1:
            raise Openid4vciError("invalid_grant", "the pre-authorized code is unknown, used or expired")
        return Token(token, TOKEN_SECONDS)

    # -- credential endpoint --

    def offer_of_token(self, access_token: str, now: datetime | None = None) -> WalletOfferRow | None:
        now = now or datetime.now(UTC)
        row = self.session.scalars(
            select(WalletOfferRow).where(WalletOfferRow.token_hash == oid4vci.digest(access_token))
        ).first()
        if row is None or row.token_expires_at is None or as_utc(row.token_expires_at) <= now:
            return None
        return row

    def issue(
        self, offer: WalletOfferRow, configuration: object, holder: str, now: datetime | None = None
    ) -> str | dict[str, Any]:
        """The credential in `configuration`, bound to `holder`, recorded as a copy; each offered
        configuration once. Raises Openid4vciError."""
        now = now or datetime.now(UTC)
        offered = offer.configurations.split()
        if configuration not in oid4vci.CONFIGURATIONS:
            raise Openid4vciError(
                "unknown_credential_configuration", f"no credential configuration {configuration!r}"
            )
        assert isinstance(configuration, str)
        if configuration not in offered:
            raise Openid4vciError(
                "unknown_credential_configuration", f"this offer is for {', '.join(offered)} only"
            )
        if configuration in offer.delivered.split():
            raise Openid4vciError(
                "invalid_credential_request", "this offer's credential was delivered already"
            )
        award = self.session.get(AwardRow, offer.credential_id)
        learner = self.session.get(Learner, offer.learner_id)
        if award is None or learner is None:
            raise Openid4vciError("credential_request_denied", "the credential is gone")
        try:
            self._check_issuable(award, now)
        except OfferRefused as exc:
            raise Openid4vciError("credential_request_denied", str(exc)) from None
        facts = self.platform.credential_store(self.session).facts(award, learner)
        if facts is None:
            raise Openid4vciError("credential_request_denied", "the credential was issued before signing")
        bound = dataclasses.replace(facts, learner_subject_id=holder)
        (signed,) = CredentialSigner(self.platform.keys, [SIGNER_FORMAT[configuration]]).sign(bound, now)
        offer.delivered = " ".join([*offer.delivered.split(), configuration])
        self.session.add(
            WalletCopyRow(
                credential_id=award.credential_id,
                learner_id=award.learner_id,
                holder=holder,
                configuration=configuration,
                issued_at=now,
            )
        )
        return signed.document if configuration == oid4vci.JWT_VC else json.loads(signed.document)


def copies_of(session: Session, learner_id: int, credential_id: str) -> list[WalletCopyRow]:
    """The wallets a learner's credential went to, oldest first."""
    query = (
        select(WalletCopyRow)
        .where(WalletCopyRow.learner_id == learner_id, WalletCopyRow.credential_id == credential_id)
        .order_by(WalletCopyRow.issued_at)
    )
    return list(session.scalars(query))


def forget_erased(session: Session, now: datetime | None = None) -> int:
    """Deletes offers and copies whose learner is gone (the issuer's erasure deletes them; this catches
    an offer made while it ran), and offers expired a day ago. Returns how many rows."""
    now = now or datetime.now(UTC)
    deleted = 0
    for table in (WalletOfferRow, WalletCopyRow):
        known = exists().where(Learner.id == table.learner_id)
        result = session.execute(delete(table).where(~known))
        deleted += int(getattr(result, "rowcount", 0) or 0)
    stale = delete(WalletOfferRow).where(WalletOfferRow.expires_at < now - timedelta(days=1))
    deleted += int(getattr(session.execute(stale), "rowcount", 0) or 0)
    return deleted
