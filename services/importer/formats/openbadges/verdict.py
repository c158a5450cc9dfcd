"""What a check concludes, and how the verdict is assembled from it: the signature (or hosted) check,
the validity window, the revocation check, expiry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.importer.domain import (
    ImportContext,
    Said,
    Verification,
    VerificationStatus,
    has_expired,
    joined,
    not_yet_valid,
    say,
)
from services.importer.formats.keys import ResolvedKey, jwk_thumbprint_uri


@dataclass(frozen=True)
class Check:
    """The outcome of the signature (or hosted) check, before the validity window, revocation, expiry."""

    status: VerificationStatus
    method: str
    reason: Said
    own_code: str | None = None  # set when the credential is one of ours


@dataclass(frozen=True)
class Window:
    """When the credential says it is valid: the latest start and the earliest end it states."""

    start: datetime | None = None
    start_field: str = ""
    end: datetime | None = None
    end_field: str = ""

    @classmethod
    def of(cls, starts: list[tuple[str, datetime | None]], ends: list[tuple[str, datetime | None]]) -> Window:
        start = max(((f, d) for f, d in starts if d is not None), key=lambda fd: fd[1], default=("", None))
        end = min(((f, d) for f, d in ends if d is not None), key=lambda fd: fd[1], default=("", None))
        return cls(start=start[1], start_field=start[0], end=end[1], end_field=end[0])


@dataclass(frozen=True)
class Revocation:
    """What the revocation check found: a reason it is revoked, a note on what was (not) checked, and
    whether a check the credential asks for could not be made (then it is not verifiable)."""

    revoked: Said | None = None
    note: Said | None = None
    failed: bool = False


NOT_CHECKED = Revocation()


def key_standing(key: ResolvedKey, issuer_id: str | None, ctx: ImportContext, method: str) -> Check:
    """The key's standing: ours, published on the issuer's own origin, trusted by us, or none."""
    if key.own:
        return Check(
            VerificationStatus.VERIFIED,
            method,
            say("signature valid ({source}); our own credential", source=key.source),
        )
    if key.binds_to(issuer_id):
        return Check(
            VerificationStatus.VERIFIED,
            method,
            say(
                "signature valid with a key the issuer {issuer} publishes on its own origin ({source})",
                issuer=issuer_id,
                source=key.source,
            ),
        )
    thumbprint = jwk_thumbprint_uri(key.jwk)
    if (issuer_id in ctx.trusted_issuers and key.speaks_for(issuer_id)) or thumbprint in ctx.trusted_issuers:
        return Check(
            VerificationStatus.VERIFIED,
            method,
            say(
                "signature valid ({source}); trusted issuer {issuer}",
                source=key.source,
                issuer=issuer_id or thumbprint,
            ),
        )
    where = (
        say("{source}, which is not on the issuer's own https origin", source=key.source)
        if key.published_by_issuer
        else key.source
    )
    return Check(
        VerificationStatus.ISSUER_UNKNOWN,
        method,
        say(
            "signature valid with {where}; the issuer {issuer} is not on our list of trusted issuers "
            "(key {key})",
            where=where,
            issuer=issuer_id or "(unnamed)",
            key=thumbprint or "?",
        ),
    )


def finish(check: Check, window: Window, revocation: Revocation, ctx: ImportContext) -> Verification:
    """An invalid signature stays invalid. Then: not yet valid (invalid, whatever the key's standing),
    revoked, expired, a revocation check that could not be made (not verifiable), else the check."""
    if check.status is VerificationStatus.INVALID:
        return Verification.of(check.status, check.method, check.reason)
    if not_yet_valid(window.start, ctx.now):
        return Verification.of(
            VerificationStatus.INVALID,
            check.method,
            say(
                "not valid yet: it is valid only from {start} ({field})",
                start=window.start,
                field=window.start_field,
            )
            + check.reason,
        )
    if revocation.revoked is not None:
        return Verification.of(
            VerificationStatus.REVOKED,
            check.method,
            say("revoked by its issuer: {reason}", reason=revocation.revoked),
        )
    if has_expired(window.end, ctx.now):
        return Verification.of(
            VerificationStatus.EXPIRED,
            check.method,
            say("expired on {end} ({field})", end=window.end, field=window.end_field) + check.reason,
        )
    if revocation.failed and check.status in (VerificationStatus.VERIFIED, VerificationStatus.ISSUER_UNKNOWN):
        return Verification.of(
            VerificationStatus.NOT_VERIFIABLE, check.method, joined(revocation.note, check.reason)
        )
    return Verification.of(check.status, check.method, joined(check.reason, revocation.note))
