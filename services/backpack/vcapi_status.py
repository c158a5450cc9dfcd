"""Status entries for credentials signed through the VC-API (`options.credentialStatus`): Bitstring Status
Lists of their own, numbered from VCAPI_LISTS_FROM so they never meet the awards' lists, each list of
one issuer (a verifier checks that the list's issuer is the credential's). A place on a list is drawn
at random among the free ones, so the list does not tell the order of issuance."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ebackpack.adapters.credential_store import CredentialStore
from ebackpack.adapters.persistence.tables import VcapiCredentialRow
from ebackpack.domain.credentials import statuslist

VCAPI_LISTS_FROM = 1_000_000
FILLED = statuslist.LIST_SIZE // 2  # a list half full takes no more: random draws stay cheap


def is_vcapi_list(number: int) -> bool:
    return number >= VCAPI_LISTS_FROM


def allocate(session: Session, issuer: str, credential_id: str | None, now: datetime) -> tuple[int, int]:
    """A free (list, index) of `issuer`'s lists, saved in the caller's transaction (flushed)."""
    number = _open_list(session, issuer)
    for _ in range(64):
        index = secrets.randbelow(statuslist.LIST_SIZE)
        row = VcapiCredentialRow(
            credential_id=credential_id,
            issuer=issuer,
            status_list=number,
            status_index=index,
            issued_at=now,
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            continue  # drawn already (or by a concurrent request): draw again
        return number, index
    raise RuntimeError(f"no free status entry found on list {number}")


def _open_list(session: Session, issuer: str) -> int:
    counts = session.execute(
        select(VcapiCredentialRow.status_list, func.count())
        .where(VcapiCredentialRow.issuer == issuer)
        .group_by(VcapiCredentialRow.status_list)
    ).all()
    open_lists = [number for number, count in counts if count < FILLED]
    if open_lists:
        return min(open_lists)
    highest = session.scalar(select(func.max(VcapiCredentialRow.status_list)))
    return max(VCAPI_LISTS_FROM, (highest or VCAPI_LISTS_FROM - 1) + 1)


def list_issuer(session: Session, number: int) -> str | None:
    """The issuer of a VC-API status list, None if the list does not exist."""
    return session.scalar(
        select(VcapiCredentialRow.issuer).where(VcapiCredentialRow.status_list == number).limit(1)
    )


def revoked_on(store: CredentialStore, number: int) -> list[int] | None:
    """The revoked entries of status list `number`, an awards' list or a VC-API list; None if there is
    no such list."""
    if is_vcapi_list(number):
        return revoked_indexes(store.session, number) if list_issuer(store.session, number) else None
    return store.revoked_indexes(number) if store.has_status_list(number) else None


def revoked_indexes(session: Session, number: int) -> list[int]:
    query = select(VcapiCredentialRow.status_index).where(
        VcapiCredentialRow.status_list == number, VcapiCredentialRow.revoked_at.is_not(None)
    )
    return list(session.scalars(query))


def revoke(session: Session, credential_id: str, now: datetime) -> bool:
    """Sets the revoked time of the credential's entry (the first revocation stands); False if no
    credential with that id and a status entry was signed here."""
    rows = list(
        session.scalars(select(VcapiCredentialRow).where(VcapiCredentialRow.credential_id == credential_id))
    )
    for row in rows:
        if row.revoked_at is None:
            row.revoked_at = now
    return bool(rows)
