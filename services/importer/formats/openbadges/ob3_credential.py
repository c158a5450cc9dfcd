"""An OB 3.0 credential as an Attestation: its contents, the learner as its recipient, and the verdict once
its proof or token signature is checked (validity window, revocation, expiry)."""

from __future__ import annotations

from typing import Any

from services.importer.domain import (
    Attestation,
    ImportContext,
    IssuerRef,
    OwnCredential,
    RecipientMatch,
    SourceFormat,
    Verification,
    VerificationStatus,
    email_matches,
    not_yet_valid,
)
from services.importer.formats.openbadges.fields import (
    issuer_id_of,
    parse_datetime,
    parse_numeric_date,
    plain_text,
)
from services.importer.formats.openbadges.revocation import ob3_revocation
from services.importer.formats.openbadges.verdict import NOT_CHECKED, Check, Window, finish


def _ob3_recipient(subject: Any, ctx: ImportContext) -> tuple[RecipientMatch, str]:
    """The learner's when an e-mail identity (plain or hashed) or the subject id is theirs; unknown when
    there is nothing we can compare, or only an id (a DID, a URL) we cannot link to them."""
    if not isinstance(subject, dict):
        return RecipientMatch.UNKNOWN, "the credential names no subject"
    identifiers = subject.get("identifier")
    emails = [
        identity
        for identity in (identifiers if isinstance(identifiers, list) else [])
        if isinstance(identity, dict) and identity.get("identityType") == "emailAddress"
    ]
    compared = ["e-mail" + (" hash" if identity.get("hashed") else "") for identity in emails]
    if any(_is_learners_email(identity, ctx) for identity in emails):
        return RecipientMatch.MATCH, "the credential's e-mail identity is the learner's"
    subject_id = str(subject.get("id") or "")
    if subject_id:
        compared.append("subject id")
        if subject_id.removeprefix("mailto:").lower() == ctx.learner.email.lower() or (
            subject_id in ctx.learner.identifiers
        ):
            return RecipientMatch.MATCH, "the credential's subject id is the learner's"
    if not compared:
        return RecipientMatch.UNKNOWN, "the credential has no e-mail or id to compare"
    if subject_id and not subject_id.startswith("mailto:") and not identifiers:
        return (
            RecipientMatch.UNKNOWN,
            f"the subject is {subject_id[:80]}, which we cannot link to the learner",
        )
    return RecipientMatch.MISMATCH, f"compared {' and '.join(compared)}: not the learner's"


def _is_learners_email(identity: dict[str, Any], ctx: ImportContext) -> bool:
    return email_matches(
        ctx.learner.email,
        str(identity.get("identityHash", "")),
        hashed=bool(identity.get("hashed")),
        salt=identity.get("salt"),
    )


def _ob3_workload(achievement: dict[str, Any]) -> str | None:
    credits = achievement.get("creditsAvailable")
    if isinstance(credits, int | float):
        return f"{credits:g} ECTS" if credits else None
    return None


def ob3_attestation(
    credential: dict[str, Any],
    source: SourceFormat,
    verification: Verification,
    ctx: ImportContext,
    original: str,
) -> Attestation:
    subject = credential.get("credentialSubject")
    subject = subject[0] if isinstance(subject, list) and subject else subject
    achievement = subject.get("achievement") if isinstance(subject, dict) else None
    achievement = achievement if isinstance(achievement, dict) else {}
    issuer = credential.get("issuer")
    issuer_obj = issuer if isinstance(issuer, dict) else {}
    recipient, detail = _ob3_recipient(subject, ctx)
    outcomes = achievement.get("learningOutcome")
    return Attestation(
        source_format=source,
        title=plain_text(achievement.get("name")) or plain_text(credential.get("name")) or "Open Badge",
        issuer=IssuerRef(
            name=plain_text(issuer_obj.get("name")),
            url=plain_text(issuer_obj.get("url")),
            identifier=issuer_id_of(issuer),
        ),
        issued_on=parse_datetime(
            credential.get("validFrom") or credential.get("issuanceDate") or credential.get("awardedDate")
        ),
        expires_on=parse_datetime(credential.get("validUntil") or credential.get("expirationDate")),
        description=plain_text(achievement.get("description")) or plain_text(credential.get("description")),
        learning_outcomes=[str(o) for o in outcomes if isinstance(o, str)]
        if isinstance(outcomes, list)
        else [],
        workload=_ob3_workload(achievement),
        recipient=recipient,
        recipient_detail=detail,
        verification=verification,
        original_json=original,
    )


def _ob3_window(credential: dict[str, Any], jwt_claims: dict[str, Any] | None) -> Window:
    """VC 2.0 `validFrom` / `validUntil`, VC 1.1 `issuanceDate` / `expirationDate` (1.1 makes the issuance
    date the start of validity), and a VC-JWT's `nbf` / `exp`."""
    claims = jwt_claims or {}
    return Window.of(
        starts=[
            ("validFrom", parse_datetime(credential.get("validFrom"))),
            ("issuanceDate", parse_datetime(credential.get("issuanceDate"))),
            ("nbf", parse_numeric_date(claims.get("nbf"))),
        ],
        ends=[
            ("validUntil", parse_datetime(credential.get("validUntil"))),
            ("expirationDate", parse_datetime(credential.get("expirationDate"))),
            ("exp", parse_numeric_date(claims.get("exp"))),
        ],
    )


def ob3_result(
    credential: dict[str, Any],
    check: Check,
    source: SourceFormat,
    ctx: ImportContext,
    original: str,
    jwt_claims: dict[str, Any] | None = None,
) -> Attestation:
    """The record of a checked OB 3.0 credential, with the validity window, revocation and expiry."""
    window = _ob3_window(credential, jwt_claims)
    attestation = ob3_attestation(
        credential, source, Verification.of(check.status, check.method, check.reason), ctx, original
    )
    revocation = NOT_CHECKED
    if check.status is not VerificationStatus.INVALID and not not_yet_valid(window.start, ctx.now):
        own = (
            _own(str(credential.get("id", "")), ctx) if check.status is VerificationStatus.VERIFIED else None
        )
        revocation = ob3_revocation(credential, own, ctx)
    verification = finish(check, window, revocation, ctx)
    return attestation.model_copy(
        update={"verification": verification, "expires_on": attestation.expires_on or window.end}
    )


def _own(credential_id: str, ctx: ImportContext) -> OwnCredential | None:
    return ctx.own_credential(credential_id) if ctx.own_credential and credential_id else None
