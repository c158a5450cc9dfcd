"""An OB 2.0 assertion as an Attestation: badge class and issuer (embedded or fetched), the learner as its
recipient, and the verdict once the hosted or signed check is made (our database overrides for our own)."""

from __future__ import annotations

from typing import Any

from services.importer.domain import (
    Attestation,
    ImportContext,
    IssuerRef,
    RecipientMatch,
    SourceFormat,
    Verification,
    email_matches,
)
from services.importer.formats.openbadges.documents import Documents
from services.importer.formats.openbadges.fields import issuer_id_of, parse_datetime, plain_text
from services.importer.formats.openbadges.verdict import Check, Revocation, Window, finish


def _ob2_recipient(assertion: dict[str, Any], ctx: ImportContext) -> tuple[RecipientMatch, str]:
    """OB 2.0 names its recipient by e-mail (plain or salted hash); other identity types we cannot compare."""
    recipient = assertion.get("recipient")
    if not isinstance(recipient, dict) or not recipient.get("identity"):
        return RecipientMatch.UNKNOWN, "the assertion names no recipient"
    kind = str(recipient.get("type", "email"))
    if kind != "email":
        return RecipientMatch.UNKNOWN, f"the recipient is identified by {kind}, not by e-mail"
    hashed = bool(recipient.get("hashed"))
    what = "the recipient e-mail hash" if hashed else "the recipient e-mail"
    if email_matches(
        ctx.learner.email, str(recipient["identity"]), hashed=hashed, salt=recipient.get("salt")
    ):
        return RecipientMatch.MATCH, f"{what} is the learner's"
    return RecipientMatch.MISMATCH, f"{what} is not the learner's"


def ob2_attestation(
    assertion: dict[str, Any],
    source: SourceFormat,
    verification: Verification,
    docs: Documents,
    original: str,
) -> Attestation:
    badge = docs.node(assertion.get("badge"))
    issuer = docs.node(badge.get("issuer")) if badge else {}
    recipient, detail = _ob2_recipient(assertion, docs.ctx)
    alignment = badge.get("alignment")
    urls = [
        u
        for u in (
            assertion.get("id"),
            assertion.get("badge") if isinstance(assertion.get("badge"), str) else None,
        )
        if isinstance(u, str) and u.startswith("http")
    ]
    return Attestation(
        source_format=source,
        title=plain_text(badge.get("name")) or "Open Badge (badge details not available offline)",
        issuer=IssuerRef(
            name=plain_text(issuer.get("name")),
            url=plain_text(issuer.get("url")),
            identifier=plain_text(issuer.get("id")) or issuer_id_of(badge.get("issuer")),
        ),
        issued_on=parse_datetime(assertion.get("issuedOn")),
        expires_on=parse_datetime(assertion.get("expires")),
        description=plain_text(badge.get("description")),
        learning_outcomes=[
            str(a["targetName"]) for a in alignment if isinstance(a, dict) and a.get("targetName")
        ]
        if isinstance(alignment, list)
        else [],
        recipient=recipient,
        recipient_detail=detail,
        verification=verification,
        urls=urls,
        original_json=original,
    )


def ob2_window(assertion: dict[str, Any]) -> Window:
    """OB 2.0: an assertion issued in the future is not valid (1EdTech validator's timestamp checks)."""
    return Window.of(
        starts=[("issuedOn", parse_datetime(assertion.get("issuedOn")))],
        ends=[("expires", parse_datetime(assertion.get("expires")))],
    )


def ob2_result(
    assertion: dict[str, Any],
    check: Check,
    revocation: Revocation,
    source: SourceFormat,
    docs: Documents,
    original: str,
) -> Attestation:
    """The record of a checked OB 2.0 assertion with its verdict; for one of ours, the title, issuer and
    dates come from our database."""
    ctx = docs.ctx
    attestation = ob2_attestation(
        assertion, source, Verification.of(check.status, check.method, check.reason), docs, original
    )
    window = ob2_window(assertion)
    if check.own_code and ctx.own_credential is not None:
        own = ctx.own_credential(check.own_code)
        if own is not None:  # our database is the source of truth for our own badges
            attestation = attestation.model_copy(
                update={
                    "title": own.title,
                    "issuer": IssuerRef(name=own.issuer_name, url=own.issuer_url),
                    "issued_on": own.issued_on,
                    "expires_on": own.expires_on,
                }
            )
            window = Window(end=own.expires_on, end_field="expires")
    verification = finish(check, window, revocation, ctx)
    return attestation.model_copy(update={"verification": verification})
