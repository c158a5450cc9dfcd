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
from services.importer.formats.openbadges.verdict import NOT_CHECKED, Check, Revocation

_GONE = re.compile(r"answered HTTP 410\b")


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


def _hosted_check(assertion: dict[str, Any], docs: Documents) -> tuple[Check, Revocation]:
    """Revocation first (410 or `revoked`: a revoked stub carries only `id` and `revoked`), then the
    upload is compared with what the issuer serves, then where it is served."""
    ctx = docs.ctx
    assertion_id = str(assertion.get("id", ""))
    code = _own_code(assertion_id, ctx)
    if code is not None and ctx.own_credential is not None:
        own = ctx.own_credential(code)
        reason = (own.revoked_reason or "revoked") if own and own.revoked else None
        return _own_check(code, own), Revocation(revoked=Said(reason, reason) if reason else None)
    method = "OB 2.0 hosted assertion"
    if not assertion_id.startswith(("https://", "http://")):
        return Check(
            VerificationStatus.NOT_VERIFIABLE, method, say("the assertion has no hosted URL to check")
        ), NOT_CHECKED
    if ctx.fetcher is None:
        return Check(
            VerificationStatus.NOT_VERIFIABLE, method, offline(say("{url}", url=assertion_id))
        ), NOT_CHECKED
    assert ctx.fetcher is not None
    try:
        served = json.loads(ctx.fetcher.get(assertion_id))
    except FetchError as exc:
        if _GONE.search(str(exc)):
            return Check(
                VerificationStatus.NOT_VERIFIABLE, method, say("the issuer no longer serves it")
            ), Revocation(revoked=say("the issuer answers 410 Gone at {url}", url=assertion_id))
        return Check(
            VerificationStatus.NOT_VERIFIABLE,
            method,
            say("{url} could not be fetched: {error}", url=assertion_id, error=exc),
        ), NOT_CHECKED
    except ValueError:
        return Check(
            VerificationStatus.INVALID, method, say("{url} does not serve JSON", url=assertion_id)
        ), NOT_CHECKED
    if not isinstance(served, dict):
        return Check(
            VerificationStatus.INVALID, method, say("{url} does not serve a JSON object", url=assertion_id)
        ), NOT_CHECKED
    if served.get("revoked") is True or served.get("revoked") == "true":
        reason = served.get("revocationReason")
        text = str(reason)[:500] if isinstance(reason, str) and reason.strip() else None
        return Check(
            VerificationStatus.NOT_VERIFIABLE, method, say("the issuer serves it as revoked")
        ), Revocation(
            revoked=Said(text, text)
            if text
            else say("the issuer serves it as revoked at {url}", url=assertion_id)
        )
    if _served_differs(served, assertion):
        return Check(
            VerificationStatus.INVALID,
            method,
            say("the uploaded assertion differs from the one its issuer serves"),
        ), NOT_CHECKED
    issuer_id = badge_issuer_id(served.get("badge"), docs)
    profile = issuer_profile(issuer_id, docs)[0] if issuer_id else None
    if _hosted_in_scope(assertion_id, issuer_id, profile):
        return Check(
            VerificationStatus.VERIFIED,
            method,
            say(
                "the issuer {issuer} serves this assertion on its own origin at {url}",
                issuer=issuer_id,
                url=assertion_id,
            ),
        ), NOT_CHECKED
    if issuer_id in ctx.trusted_issuers:
        return Check(
            VerificationStatus.VERIFIED,
            method,
            say(
                "the assertion is served at {url}; trusted issuer {issuer}",
                url=assertion_id,
                issuer=issuer_id,
            ),
        ), NOT_CHECKED
    return Check(
        VerificationStatus.ISSUER_UNKNOWN,
        method,
        say(
            "the assertion is served at {url}, which is not its issuer's own https origin ({issuer}); "
            "the issuer is not on our list of trusted issuers",
            url=assertion_id,
            issuer=issuer_id or "(unnamed)",
        ),
    ), NOT_CHECKED


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
        verification=Verification.of(VerificationStatus.REVOKED, "OB 2.0 hosted assertion", reason),
        urls=[url],
    )
