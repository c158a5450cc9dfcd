"""Revocation: OB 3.0 status lists (Bitstring Status List, StatusList2021) and 1EdTech revocation lists,
OB 2.0 issuers' `revocationList`, and our own database for our own credentials."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from services.importer.domain import (
    FetchError,
    ImportContext,
    ImportRejected,
    OwnCredential,
    Said,
    offline,
    say,
)
from services.importer.formats.openbadges.documents import Documents
from services.importer.formats.openbadges.fields import issuer_id_of
from services.importer.formats.openbadges.tokens import jws_parts
from services.importer.formats.openbadges.verdict import NOT_CHECKED, Revocation

MAX_STATUS_LIST_BYTES = 2 * 1024 * 1024  # 16 Mi entries: larger lists are refused, not inflated


def _bounded_gunzip(data: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    bits = inflater.decompress(data, MAX_STATUS_LIST_BYTES + 1)
    if len(bits) > MAX_STATUS_LIST_BYTES:
        raise ValueError("status list larger than 16 Mi entries")
    return bits


def _fetch_json(url: str, ctx: ImportContext) -> dict[str, Any]:
    """A status or revocation list: JSON, or a VC-JWT whose payload is (or has `vc`) the credential.
    Its own signature is not checked (the list only ever takes validity away)."""
    assert ctx.fetcher is not None
    body = ctx.fetcher.get(url, accept="application/vc+ld+json, application/vc+jwt, application/json").strip()
    if body[:1] != b"{" and body.count(b".") == 2:
        try:
            _header, claims = jws_parts(body.decode("ascii"))
        except (ImportRejected, UnicodeDecodeError) as exc:
            raise ValueError(f"{url} serves neither JSON nor a readable JWT: {exc}") from None
        vc = claims.get("vc")
        return vc if isinstance(vc, dict) else claims
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError(f"{url} does not serve a JSON object")
    return document


def _bitstring_revoked(entry: dict[str, Any], ctx: ImportContext) -> Revocation:
    url = str(entry.get("statusListCredential", ""))
    index = int(str(entry.get("statusListIndex", "-1")))
    listing = _fetch_json(url, ctx)
    subject = listing.get("credentialSubject", {})
    subject = subject[0] if isinstance(subject, list) and subject else subject
    encoded = str(subject.get("encodedList", "")) if isinstance(subject, dict) else ""
    # Bitstring Status List: multibase base64url ("u…"); StatusList2021: plain base64url. GZIP always
    # encodes to "H4sI…", so a leading "u" is the multibase prefix.
    body = encoded[1:] if encoded.startswith("u") else encoded
    if not body:
        raise ValueError("the status list has no encodedList")
    bits = _bounded_gunzip(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    if not 0 <= index < len(bits) * 8:
        raise ValueError(f"status index {index} is outside the list")
    if bits[index // 8] >> (7 - index % 8) & 1:
        return Revocation(revoked=say("the status list marks it revoked"))
    return Revocation(note=say("status list {url} checked", url=url))


def _listing_verdict(entries: Any, ids: set[str], url: str) -> Revocation:
    """Revoked when a revocation list's entries (ids, or objects with `id` / `uid`) name one of `ids`,
    with the issuer's reason when it gives one."""
    listed = say("listed in the revocation list {url}", url=url)
    for item in entries if isinstance(entries, list) else []:
        if isinstance(item, str) and item in ids:
            return Revocation(revoked=listed)
        if isinstance(item, dict) and ({str(item.get("id", "")), str(item.get("uid", ""))} & ids):
            return Revocation(revoked=issuer_words(item.get("revocationReason")) or listed)
    return Revocation(note=say("revocation list {url} checked", url=url))


def issuer_words(reason: Any) -> Said | None:
    """An issuer's own revocation reason, the same in both languages (we cannot translate it)."""
    if not isinstance(reason, str) or not reason.strip():
        return None
    return Said(reason[:500], reason[:500])


def _revocation_list(entry: dict[str, Any], credential_id: str, ctx: ImportContext) -> Revocation:
    url = str(entry.get("id", ""))
    listing = _fetch_json(url, ctx)
    subject = listing.get("credentialSubject")
    entries = listing.get("revokedCredentials") or (
        subject.get("revokedCredentials") if isinstance(subject, dict) else None
    )
    return _listing_verdict(entries, {credential_id} - {""}, url)


def ob3_revocation(credential: dict[str, Any], own: OwnCredential | None, ctx: ImportContext) -> Revocation:
    """Our database for our own credential; else the status entry it carries (network)."""
    if own is not None:
        return _own_status(own)
    entry = credential.get("credentialStatus")
    entry = entry[0] if isinstance(entry, list) and entry else entry
    if not isinstance(entry, dict):
        return NOT_CHECKED
    kind = str(entry.get("type", ""))[:80]
    if ctx.fetcher is None:
        return Revocation(note=offline(say("revocation ({kind})", kind=kind)))
    try:
        if kind in ("BitstringStatusListEntry", "StatusList2021Entry"):
            return _bitstring_revoked(entry, ctx)
        if kind == "1EdTechRevocationList":
            return _revocation_list(entry, str(credential.get("id", "")), ctx)
    except (FetchError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return Revocation(note=say("revocation could not be checked: {error}", error=exc), failed=True)
    return Revocation(note=say("revocation method {kind} is not supported", kind=kind))


def _own_status(own: OwnCredential) -> Revocation:
    revoked = own.revoked_reason or "revoked"
    return Revocation(
        revoked=Said(revoked, revoked) if own.revoked else None,
        note=say("status checked in our database"),
    )


def ob2_revocation(
    assertion: dict[str, Any], issuer: dict[str, Any] | None, problem: Said | None, docs: Documents
) -> Revocation:
    """The issuer's `revocationList`; a list (or a profile) that cannot be read makes the assertion not
    verifiable, never silently unchecked."""
    if issuer is None:
        return Revocation(
            note=say(
                "the issuer's revocation list could not be checked: {why}",
                why=problem or say("no issuer profile"),
            ),
            failed=True,
        )
    reference = issuer.get("revocationList")
    if not reference:
        return Revocation(note=say("the issuer publishes no revocation list"))
    url = issuer_id_of(reference) or "(embedded)"
    listing, trouble = _ob2_listing(reference, url, docs)
    if listing is None:
        return Revocation(
            note=say(
                "the issuer's revocation list {url} could not be checked: {why}",
                url=url,
                why=trouble or say("not a URL"),
            ),
            failed=True,
        )
    ids = {
        str(assertion.get(k)) for k in ("id", "uid") if isinstance(assertion.get(k), str) and assertion.get(k)
    }
    return _listing_verdict(listing.get("revokedAssertions"), ids, url)


def _ob2_listing(reference: Any, url: str, docs: Documents) -> tuple[dict[str, Any] | None, Said | None]:
    """The revocation list the profile embeds, or the one at its URL (fetched once per import)."""
    if isinstance(reference, dict) and "revokedAssertions" in reference:
        return reference, None
    if url.startswith(("https://", "http://")):
        return docs.get(url)
    return None, say("not a URL")
