"""OB 2.0 hosted verification: the assertion as its issuer serves it at its `id` (or our own database), and
the 410 Gone with which an issuer withdraws one."""

from __future__ import annotations

import json
import re
from typing import Any

from services.importer.domain import (
    Attestation,
    FetchError,
    ImportContext,
    OwnCredential,
    Said,
    SourceFormat,
    Verification,
    VerificationStatus,
    offline,
    say,
)
from services.importer.formats.keys import issuer_origin, same_origin
from services.importer.formats.openbadges.documents import Documents, badge_issuer_id, issuer_profile
from services.importer.formats.openbadges.fields import load_json_object, parse_datetime
from services.importer.formats.openbadges.ob2_assertion import ob2_result
from services.importer.formats.openbadges.revocation import issuer_words
from services.importer.formats.openbadges.verdict import NOT_CHECKED, Check, Revocation

_GONE = re.compile(r"answered HTTP 410\b")
HOSTED = "OB 2.0 hosted assertion"


def _own_code(assertion_id: str, ctx: ImportContext) -> str | None:
    prefix = f"{ctx.own_public_url.rstrip('/')}/ob2/assertions/" if ctx.own_public_url else None
    if prefix and assertion_id.startswith(prefix):
        return assertion_id.removeprefix(prefix).split("/")[0].split("?")[0] or None
    return None


def _own_check(code: str, own: OwnCredential | None) -> Check:
    if own is None:
        return Check(
            VerificationStatus.INVALID,
            "our database",
            say("the assertion claims to be ours, but we never issued code {code}", code=code),
        )
    return Check(
        VerificationStatus.VERIFIED, "our database", say("issued by us: found in our database"), own_code=code
    )


def _hosted_in_scope(assertion_id: str, issuer_id: str | None, profile: dict[str, Any] | None) -> bool:
    """The issuer's origin serves the assertion (OB 2.0 hosted verification): the same https origin as
    the issuer id, or one its profile's verification policy allows (`allowedOrigins`, `startsWith`)."""
    policy = profile.get("verification") if profile else None
    policy = policy if isinstance(policy, dict) else {}
    starts = policy.get("startsWith")
    starts = [starts] if isinstance(starts, str) else starts if isinstance(starts, list) else []
    if starts and not any(isinstance(s, str) and s and assertion_id.startswith(s) for s in starts):
        return False
    allowed = policy.get("allowedOrigins")
    allowed = [allowed] if isinstance(allowed, str) else allowed if isinstance(allowed, list) else []
    origin = issuer_origin(assertion_id)
    if allowed and origin is not None:
        authority = assertion_id.split("//", 1)[1].split("/", 1)[0].lower()
        return authority in {str(a).lower() for a in allowed}
    return same_origin(assertion_id, issuer_id)


def _served_differs(served: dict[str, Any], uploaded: dict[str, Any]) -> bool:
    if any(served.get(k) != uploaded.get(k) for k in ("id", "recipient", "badge")):
        return True
    return any(
        parse_datetime(served.get(k)) != parse_datetime(uploaded.get(k)) for k in ("issuedOn", "expires")
    )


def _where_served(assertion_id: str, issuer_id: str | None, docs: Documents) -> Check:
    """The served assertion is the issuer's when its own origin (or one its profile allows) serves it."""
    profile = issuer_profile(issuer_id, docs)[0] if issuer_id else None
    if _hosted_in_scope(assertion_id, issuer_id, profile):
        return Check(
            VerificationStatus.VERIFIED,
            HOSTED,
            say(
                "the issuer {issuer} serves this assertion on its own origin at {url}",
                issuer=issuer_id,
                url=assertion_id,
            ),
        )
    if issuer_id in docs.ctx.trusted_issuers:
        return Check(
            VerificationStatus.VERIFIED,
            HOSTED,
            say(
                "the assertion is served at {url}; trusted issuer {issuer}",
                url=assertion_id,
                issuer=issuer_id,
            ),
        )
    return Check(
        VerificationStatus.ISSUER_UNKNOWN,
        HOSTED,
        say(
            "the assertion is served at {url}, which is not its issuer's own https origin ({issuer}); "
            "the issuer is not on our list of trusted issuers",
            url=assertion_id,
            issuer=issuer_id or "(unnamed)",
        ),
    )


def _hosted_check(assertion: dict[str, Any], docs: Documents) -> tuple[Check, Revocation]:
    """Revocation first (410 or `revoked`: a revoked stub carries only `id` and `revoked`), then the
    upload is compared with what the issuer serves, then where it is served."""
    ctx = docs.ctx
    assertion_id = str(assertion.get("id", ""))
    code = _own_code(assertion_id, ctx)
    if code is not None and ctx.own_credential is not None:
        return _own_database_check(code, ctx.own_credential(code))
    if not assertion_id.startswith(("https://", "http://")):
        return _unchecked(VerificationStatus.NOT_VERIFIABLE, say("the assertion has no hosted URL to check"))
    if ctx.fetcher is None:
        return _unchecked(VerificationStatus.NOT_VERIFIABLE, offline(say("{url}", url=assertion_id)))
    served = _served(assertion_id, ctx)
    if isinstance(served, tuple):
        return served
    if served.get("revoked") is True or served.get("revoked") == "true":
        reason = issuer_words(served.get("revocationReason")) or say(
            "the issuer serves it as revoked at {url}", url=assertion_id
        )
        return Check(
            VerificationStatus.NOT_VERIFIABLE, HOSTED, say("the issuer serves it as revoked")
        ), Revocation(revoked=reason)
    if _served_differs(served, assertion):
        return _unchecked(
            VerificationStatus.INVALID, say("the uploaded assertion differs from the one its issuer serves")
        )
    return _where_served(assertion_id, badge_issuer_id(served.get("badge"), docs), docs), NOT_CHECKED


def _unchecked(status: VerificationStatus, reason: Said) -> tuple[Check, Revocation]:
    """A hosted check that ends before revocation could be looked at."""
    return Check(status, HOSTED, reason), NOT_CHECKED


def _own_database_check(code: str, own: OwnCredential | None) -> tuple[Check, Revocation]:
    """Our own assertion: our database, not the network, says whether it exists and is revoked."""
    reason = (own.revoked_reason or "revoked") if own and own.revoked else None
    return _own_check(code, own), Revocation(revoked=Said(reason, reason) if reason else None)


def _served(assertion_id: str, ctx: ImportContext) -> dict[str, Any] | tuple[Check, Revocation]:
    """The assertion its issuer serves at its id, or the check that ends there (a 410 Gone revokes it)."""
    assert ctx.fetcher is not None
    try:
        served = json.loads(ctx.fetcher.get(assertion_id))
    except FetchError as exc:
        if _GONE.search(str(exc)):
            return Check(
                VerificationStatus.NOT_VERIFIABLE, HOSTED, say("the issuer no longer serves it")
            ), Revocation(revoked=say("the issuer answers 410 Gone at {url}", url=assertion_id))
        return _unchecked(
            VerificationStatus.NOT_VERIFIABLE,
            say("{url} could not be fetched: {error}", url=assertion_id, error=exc),
        )
    except ValueError:
        return _unchecked(VerificationStatus.INVALID, say("{url} does not serve JSON", url=assertion_id))
    if not isinstance(served, dict):
        return _unchecked(
            VerificationStatus.INVALID, say("{url} does not serve a JSON object", url=assertion_id)
        )
    return served


def parse_ob2_json(
    text: str, ctx: ImportContext, source: SourceFormat = SourceFormat.OB2_JSON
) -> Attestation:
    assertion = load_json_object(text, "Open Badges 2.0 assertion")
    docs = Documents(ctx)
    check, revocation = _hosted_check(assertion, docs)
    return ob2_result(assertion, check, revocation, source, docs, text)


def withdrawn_link(url: str, error: FetchError) -> Attestation | None:
    """A submitted link its server answers with 410 Gone: in Open Badges 2.0, a revoked assertion."""
    if not _GONE.search(str(error)):
        return None
    reason = say(
        "revoked by its issuer: {reason}", reason=say("the issuer answers 410 Gone at {url}", url=url)
    )
    return Attestation(
        source_format=SourceFormat.OB2_HOSTED,
        title="Open Badge (withdrawn by its issuer)",
        verification=Verification.of(VerificationStatus.REVOKED, HOSTED, reason),
        urls=[url],
    )
