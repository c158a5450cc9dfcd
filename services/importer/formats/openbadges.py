"""Open Badges 2.0 and 3.0: JSON, JWS / VC-JWT, and what baked images carry, into one Attestation.

Verification, strongest first:
- OB 3.0 Data Integrity (`eddsa-rdfc-2022`, `eddsa-2022`, `Ed25519Signature2020`) and VC-JWT: the
  signature against the key the proof names (see keys.py for where keys come from);
- OB 2.0 hosted: the assertion as its issuer serves it at its `id` (network), or our own database;
- OB 2.0 signed (JWS): the key at `verification.creator` (network).
Then revocation (status list / revocation list / 410) and expiry.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import base58
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

from ebackpack.credentials.dataintegrity import hash_data
from ebackpack.credentials.jsonld import canonize
from services.importer.domain import (
    Attestation,
    FetchError,
    ImportContext,
    ImportRejected,
    IssuerRef,
    OwnCredential,
    RecipientMatch,
    SourceFormat,
    Verification,
    VerificationStatus,
    email_matches,
    not_verifiable_offline,
)
from services.importer.formats.keys import KeyUnavailable, ResolvedKey, resolve

ED25519_SUITES = {"eddsa-rdfc-2022", "eddsa-2022"}
MAX_STATUS_LIST_BYTES = 2 * 1024 * 1024  # 16 Mi entries: larger lists are refused, not inflated
JWS_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


# ------------------------------------------------------------------------------------------ shared


@dataclass(frozen=True)
class Check:
    """The outcome of the signature (or hosted) check, before revocation and expiry."""

    status: VerificationStatus
    method: str
    reason: str
    own_code: str | None = None  # set when the credential is one of ours


def parse_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _text(value: Any) -> str | None:
    """A plain string, or the English / first entry of a language map."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        for key in ("en", "@value", "pl"):
            if isinstance(value.get(key), str):
                return str(value[key])
        first = next((v for v in value.values() if isinstance(v, str)), None)
        return first
    return None


def load_json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ImportRejected(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ImportRejected(f"{what} is not a JSON object")
    return value


def _b64url_json(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except ValueError:
        raise ImportRejected(f"{what} is not base64url") from None
    return load_json_object(raw.decode("utf-8", "replace"), what)


def jws_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a compact JWS/JWT, unverified (to route it and find its key)."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise ImportRejected("not a compact JWS/JWT: it needs three dot-separated parts")
    return _b64url_json(parts[0], "JWS header"), _b64url_json(parts[1], "JWS payload")


def _issuer_id(issuer: Any) -> str | None:
    if isinstance(issuer, dict):
        return str(issuer.get("id") or "") or None
    return str(issuer) if isinstance(issuer, str) else None


def _trusted(ctx: ImportContext, issuer_id: str | None, key: ResolvedKey) -> bool:
    return key.own or (issuer_id in ctx.trusted_issuers and key.speaks_for(issuer_id))


def _signature_check(key: ResolvedKey, issuer_id: str | None, ctx: ImportContext, method: str) -> Check:
    if _trusted(ctx, issuer_id, key):
        who = "our own credential" if key.own else f"trusted issuer {issuer_id}"
        return Check(VerificationStatus.VERIFIED, method, f"signature valid ({key.source}); {who}")
    where = f"published by the issuer ({key.source})" if key.published_by_issuer else key.source
    return Check(
        VerificationStatus.ISSUER_UNKNOWN,
        method,
        f"signature valid with {where}; the issuer {issuer_id or '(unnamed)'} "
        "is not on our list of trusted issuers",
    )


def finish(
    check: Check, *, revoked: str | None, revocation_note: str, expires: datetime | None, ctx: ImportContext
) -> Verification:
    """Revocation and expiry override a valid or unverifiable signature, never an invalid one."""
    if check.status is VerificationStatus.INVALID:
        return Verification(status=check.status, method=check.method, reason=check.reason)
    if revoked is not None:
        return Verification(
            status=VerificationStatus.REVOKED, method=check.method, reason=f"revoked by its issuer: {revoked}"
        )
    if expires is not None and expires <= ctx.now:
        return Verification(
            status=VerificationStatus.EXPIRED,
            method=check.method,
            reason=f"expired on {expires.date().isoformat()} ({check.reason})",
        )
    reason = f"{check.reason}; {revocation_note}" if revocation_note else check.reason
    return Verification(status=check.status, method=check.method, reason=reason)


# ------------------------------------------------------------------------------------ OB 3.0 body


def _ob3_recipient(subject: Any, ctx: ImportContext) -> tuple[RecipientMatch, str]:
    if not isinstance(subject, dict):
        return RecipientMatch.UNKNOWN, "the credential names no subject"
    compared: list[str] = []
    identifiers = subject.get("identifier")
    for identity in identifiers if isinstance(identifiers, list) else []:
        if not isinstance(identity, dict) or identity.get("identityType") != "emailAddress":
            continue
        compared.append("e-mail" + (" hash" if identity.get("hashed") else ""))
        if email_matches(
            ctx.learner.email,
            str(identity.get("identityHash", "")),
            hashed=bool(identity.get("hashed")),
            salt=identity.get("salt"),
        ):
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
        title=_text(achievement.get("name")) or _text(credential.get("name")) or "Open Badge",
        issuer=IssuerRef(
            name=_text(issuer_obj.get("name")),
            url=_text(issuer_obj.get("url")),
            identifier=_issuer_id(issuer),
        ),
        issued_on=parse_datetime(
            credential.get("validFrom") or credential.get("issuanceDate") or credential.get("awardedDate")
        ),
        expires_on=parse_datetime(credential.get("validUntil") or credential.get("expirationDate")),
        description=_text(achievement.get("description")) or _text(credential.get("description")),
        learning_outcomes=[str(o) for o in outcomes if isinstance(o, str)]
        if isinstance(outcomes, list)
        else [],
        workload=_ob3_workload(achievement),
        recipient=recipient,
        recipient_detail=detail,
        verification=verification,
        original_json=original,
    )


# ------------------------------------------------------------------------------ OB 3.0 revocation


def _bounded_gunzip(data: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    bits = inflater.decompress(data, MAX_STATUS_LIST_BYTES + 1)
    if len(bits) > MAX_STATUS_LIST_BYTES:
        raise ValueError("status list larger than 16 Mi entries")
    return bits


def _fetch_json(url: str, ctx: ImportContext) -> Any:
    assert ctx.fetcher is not None
    return json.loads(ctx.fetcher.get(url))


def _bitstring_revoked(entry: dict[str, Any], ctx: ImportContext) -> tuple[str | None, str]:
    url = str(entry.get("statusListCredential", ""))
    index = int(str(entry.get("statusListIndex", "-1")))
    listing = _fetch_json(url, ctx)
    subject = listing.get("credentialSubject", {}) if isinstance(listing, dict) else {}
    encoded = str(subject.get("encodedList", ""))
    if not encoded.startswith("u"):
        raise ValueError("encodedList is not multibase base64url")
    bits = _bounded_gunzip(base64.urlsafe_b64decode(encoded[1:] + "=" * (-len(encoded[1:]) % 4)))
    if not 0 <= index < len(bits) * 8:
        raise ValueError(f"status index {index} is outside the list")
    revoked = bool(bits[index // 8] >> (7 - index % 8) & 1)
    return ("the status list marks it revoked" if revoked else None), f"status list {url} checked"


def _revocation_list(entry: dict[str, Any], credential_id: str, ctx: ImportContext) -> tuple[str | None, str]:
    url = str(entry.get("id", ""))
    listing = _fetch_json(url, ctx)
    for item in listing.get("revokedCredentials", []) if isinstance(listing, dict) else []:
        if isinstance(item, dict) and item.get("id") == credential_id:
            return str(item.get("revocationReason") or "listed in the revocation list"), ""
    return None, f"revocation list {url} checked"


def ob3_revocation(
    credential: dict[str, Any], own: OwnCredential | None, ctx: ImportContext
) -> tuple[str | None, str]:
    """(revocation reason or None, a note on what was or could not be checked)."""
    if own is not None:
        return (own.revoked_reason or "revoked") if own.revoked else None, "status checked in our database"
    entry = credential.get("credentialStatus")
    entry = entry[0] if isinstance(entry, list) and entry else entry
    if not isinstance(entry, dict):
        return None, ""
    kind = str(entry.get("type", ""))
    if ctx.fetcher is None:
        return None, not_verifiable_offline(f"revocation ({kind})")
    try:
        if kind in ("BitstringStatusListEntry", "StatusList2021Entry"):
            return _bitstring_revoked(entry, ctx)
        if kind == "1EdTechRevocationList":
            return _revocation_list(entry, str(credential.get("id", "")), ctx)
    except (FetchError, ValueError, KeyError, TypeError) as exc:
        return None, f"revocation could not be checked: {exc}"
    return None, f"revocation method {kind} is not supported"


def _own(credential_id: str, ctx: ImportContext) -> OwnCredential | None:
    return ctx.own_credential(credential_id) if ctx.own_credential and credential_id else None


# ---------------------------------------------------------------------------- OB 3.0 verification


def _ed25519_key(jwk: dict[str, Any]) -> ed25519.Ed25519PublicKey:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise KeyUnavailable("the proof needs an Ed25519 key, the verification method names another type")
    x = str(jwk["x"])
    return ed25519.Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))


def _supported_proof(credential: dict[str, Any]) -> dict[str, Any] | None:
    proofs = credential.get("proof")
    for proof in proofs if isinstance(proofs, list) else [proofs]:
        if isinstance(proof, dict) and (
            proof.get("cryptosuite") in ED25519_SUITES or proof.get("type") == "Ed25519Signature2020"
        ):
            return proof
    return None


def _data_integrity_check(credential: dict[str, Any], ctx: ImportContext) -> Check:
    proof = _supported_proof(credential)
    issuer_id = _issuer_id(credential.get("issuer"))
    if proof is None:
        kinds = credential.get("proof")
        what = "no proof" if not kinds else "a proof type we cannot check"
        return Check(VerificationStatus.NOT_VERIFIABLE, "none", f"the credential has {what}")
    suite = str(proof.get("cryptosuite") or proof.get("type"))
    method_id = str(proof.get("verificationMethod", ""))
    method = f"Data Integrity {suite}"
    try:
        key = resolve(method_id, ctx)
        public_key = _ed25519_key(key.jwk)
    except KeyUnavailable as exc:
        return Check(VerificationStatus.NOT_VERIFIABLE, method, str(exc))
    unsigned = {k: v for k, v in credential.items() if k != "proof"}
    options = {"@context": credential.get("@context")} | {k: v for k, v in proof.items() if k != "proofValue"}
    try:
        data = hash_data(canonize(options), canonize(unsigned))
    except Exception as exc:  # pyld raises its own error types, wrapping ours (unknown context)
        return Check(
            VerificationStatus.NOT_VERIFIABLE, method, f"the document cannot be canonicalized: {exc}"
        )
    value = str(proof.get("proofValue", ""))
    try:
        public_key.verify(base58.b58decode(value[1:]) if value.startswith("z") else b"", data)
    except (InvalidSignature, ValueError):
        return Check(
            VerificationStatus.INVALID,
            method,
            "the signature does not match the document: it was changed after signing or signed "
            "with another key",
        )
    return _signature_check(key, issuer_id, ctx, method)


def parse_ob3_json(
    text: str, ctx: ImportContext, source: SourceFormat = SourceFormat.OB3_JSON
) -> Attestation:
    credential = load_json_object(text, "Open Badges 3.0 credential")
    return _ob3_result(credential, _data_integrity_check(credential, ctx), source, ctx, text)


def _ob3_result(
    credential: dict[str, Any],
    check: Check,
    source: SourceFormat,
    ctx: ImportContext,
    original: str,
    expires: datetime | None = None,
) -> Attestation:
    """The record of a checked OB 3.0 credential, with revocation and expiry applied."""
    own = _own(str(credential.get("id", "")), ctx) if check.status is VerificationStatus.VERIFIED else None
    verification = Verification(status=check.status, method=check.method, reason=check.reason)
    attestation = ob3_attestation(credential, source, verification, ctx, original)
    expires = attestation.expires_on or expires
    revoked, note = ob3_revocation(credential, own, ctx)
    verification = finish(check, revoked=revoked, revocation_note=note, expires=expires, ctx=ctx)
    return attestation.model_copy(update={"verification": verification, "expires_on": expires})


def _jws_key(header: dict[str, Any], issuer_id: str | None, ctx: ImportContext) -> ResolvedKey:
    if isinstance(header.get("kid"), str):
        return resolve(str(header["kid"]), ctx)
    if isinstance(header.get("jwk"), dict):
        return ResolvedKey(dict(header["jwk"]), "the key embedded in the token's own header")
    if issuer_id and issuer_id.startswith(("https://", "http://")):
        if ctx.fetcher is None:
            raise KeyUnavailable(not_verifiable_offline(f"the issuer profile {issuer_id} (its public key)"))
        try:
            profile = json.loads(ctx.fetcher.get(issuer_id))
        except (FetchError, ValueError) as exc:
            raise KeyUnavailable(f"the issuer profile {issuer_id} could not be read: {exc}") from None
        jwk = profile.get("publicKey") if isinstance(profile, dict) else None
        if isinstance(jwk, dict):
            return ResolvedKey(jwk, f"issuer profile {issuer_id}", published_by_issuer=True)
    raise KeyUnavailable("the token names no key (no kid, no jwk) and the issuer publishes none we can read")


class _ImportJWSRegistry(jws.JWSRegistry):
    max_header_length = 8192  # headers may embed the signer's RSA key (`jwk`)
    max_payload_length = 4 * 1024 * 1024  # credentials may embed their badge image


def verify_jws(token: str, key: ResolvedKey) -> bytes:
    """The verified payload; raises ValueError when the signature does not match."""
    try:
        public = JWKRegistry.import_key(key.jwk)
        registry = _ImportJWSRegistry(algorithms=JWS_ALGORITHMS, strict_check_header=False)
        return bytes(jws.deserialize_compact(token.strip(), public, registry=registry).payload)
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None


def parse_ob3_jwt(token: str, ctx: ImportContext, source: SourceFormat = SourceFormat.OB3_JWT) -> Attestation:
    header, claims = jws_parts(token)
    vc = claims.get("vc")
    credential: dict[str, Any] = vc if isinstance(vc, dict) else claims
    issuer_id = _issuer_id(credential.get("issuer")) or claims.get("iss")
    method = f"VC-JWT {header.get('alg', '?')}"
    try:
        key = _jws_key(header, issuer_id, ctx)
        verify_jws(token, key)
        check = _signature_check(key, issuer_id, ctx, method)
    except KeyUnavailable as exc:
        check = Check(VerificationStatus.NOT_VERIFIABLE, method, str(exc))
    except ValueError as exc:
        check = Check(VerificationStatus.INVALID, method, f"the token's signature does not match: {exc}")
    exp = claims.get("exp")
    expires = datetime.fromtimestamp(exp, UTC) if isinstance(exp, int) else None
    return _ob3_result(credential, check, source, ctx, token.strip(), expires)


# ---------------------------------------------------------------------------------------- OB 2.0


def _ob2_recipient(assertion: dict[str, Any], ctx: ImportContext) -> tuple[RecipientMatch, str]:
    recipient = assertion.get("recipient")
    if not isinstance(recipient, dict) or not recipient.get("identity"):
        return RecipientMatch.UNKNOWN, "the assertion names no recipient"
    kind = str(recipient.get("type", "email"))
    if kind != "email":
        return RecipientMatch.UNKNOWN, f"the recipient is identified by {kind}, not by e-mail"
    hashed = bool(recipient.get("hashed"))
    if email_matches(
        ctx.learner.email, str(recipient["identity"]), hashed=hashed, salt=recipient.get("salt")
    ):
        return RecipientMatch.MATCH, "the recipient e-mail" + (
            " hash" if hashed else ""
        ) + " is the learner's"
    return RecipientMatch.MISMATCH, "the recipient e-mail" + (
        " hash" if hashed else ""
    ) + " is not the learner's"


def _own_code(assertion_id: str, ctx: ImportContext) -> str | None:
    prefix = f"{ctx.own_public_url.rstrip('/')}/ob2/assertions/" if ctx.own_public_url else None
    if prefix and assertion_id.startswith(prefix):
        return assertion_id.removeprefix(prefix).split("/")[0].split("?")[0] or None
    return None


def _badge_object(badge: Any, ctx: ImportContext) -> dict[str, Any]:
    if isinstance(badge, dict):
        return badge
    if isinstance(badge, str) and ctx.fetcher is not None:
        try:
            fetched = json.loads(ctx.fetcher.get(badge))
            return fetched if isinstance(fetched, dict) else {}
        except (FetchError, ValueError):
            return {}
    return {}


def ob2_attestation(
    assertion: dict[str, Any],
    source: SourceFormat,
    verification: Verification,
    ctx: ImportContext,
    original: str,
) -> Attestation:
    badge = _badge_object(assertion.get("badge"), ctx)
    issuer = _badge_object(badge.get("issuer"), ctx) if badge else {}
    recipient, detail = _ob2_recipient(assertion, ctx)
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
        title=_text(badge.get("name")) or "Open Badge (badge details not available offline)",
        issuer=IssuerRef(
            name=_text(issuer.get("name")),
            url=_text(issuer.get("url")),
            identifier=_text(issuer.get("id")) or _text(badge.get("issuer")),
        ),
        issued_on=parse_datetime(assertion.get("issuedOn")),
        expires_on=parse_datetime(assertion.get("expires")),
        description=_text(badge.get("description")),
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


def _own_check(code: str, own: OwnCredential | None) -> Check:
    if own is None:
        return Check(
            VerificationStatus.INVALID,
            "our database",
            f"the assertion claims to be ours, but we never issued code {code}",
        )
    return Check(
        VerificationStatus.VERIFIED, "our database", "issued by us: found in our database", own_code=code
    )


def _hosted_check(assertion: dict[str, Any], ctx: ImportContext) -> tuple[Check, str | None]:
    """(check, revocation reason). Compares the upload with the assertion its issuer serves."""
    assertion_id = str(assertion.get("id", ""))
    code = _own_code(assertion_id, ctx)
    if code is not None and ctx.own_credential is not None:
        own = ctx.own_credential(code)
        return _own_check(code, own), (own.revoked_reason or "revoked") if own and own.revoked else None
    method = "OB 2.0 hosted assertion"
    if not assertion_id.startswith(("https://", "http://")):
        return Check(
            VerificationStatus.NOT_VERIFIABLE, method, "the assertion has no hosted URL to check"
        ), None
    if ctx.fetcher is None:
        return Check(VerificationStatus.NOT_VERIFIABLE, method, not_verifiable_offline(assertion_id)), None
    try:
        served = json.loads(ctx.fetcher.get(assertion_id))
    except FetchError as exc:
        if "410" in str(exc):
            return Check(VerificationStatus.NOT_VERIFIABLE, method, "gone"), "the issuer answers 410 Gone"
        return Check(
            VerificationStatus.NOT_VERIFIABLE, method, f"{assertion_id} could not be fetched: {exc}"
        ), None
    except ValueError:
        return Check(VerificationStatus.INVALID, method, f"{assertion_id} does not serve JSON"), None
    if not isinstance(served, dict) or any(
        served.get(k) != assertion.get(k) for k in ("id", "recipient", "badge")
    ):
        return Check(
            VerificationStatus.INVALID,
            method,
            "the uploaded assertion differs from the one its issuer serves",
        ), None
    if served.get("revoked"):
        return Check(VerificationStatus.ISSUER_UNKNOWN, method, "served"), str(
            served.get("revocationReason") or "revoked"
        )
    issuer_id = _text(_badge_object(served.get("badge"), ctx).get("issuer"))
    status = (
        VerificationStatus.VERIFIED if issuer_id in ctx.trusted_issuers else VerificationStatus.ISSUER_UNKNOWN
    )
    reason = "the issuer serves this assertion at its URL" + (
        "" if status is VerificationStatus.VERIFIED else "; the issuer is not on our list of trusted issuers"
    )
    return Check(status, method, reason), None


def parse_ob2_json(
    text: str, ctx: ImportContext, source: SourceFormat = SourceFormat.OB2_JSON
) -> Attestation:
    assertion = load_json_object(text, "Open Badges 2.0 assertion")
    check, revoked = _hosted_check(assertion, ctx)
    return _ob2_finish(assertion, check, revoked, source, ctx, text)


def _ob2_finish(
    assertion: dict[str, Any],
    check: Check,
    revoked: str | None,
    source: SourceFormat,
    ctx: ImportContext,
    original: str,
) -> Attestation:
    attestation = ob2_attestation(
        assertion,
        source,
        Verification(status=check.status, method=check.method, reason=check.reason),
        ctx,
        original,
    )
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
    verification = finish(check, revoked=revoked, revocation_note="", expires=attestation.expires_on, ctx=ctx)
    return attestation.model_copy(update={"verification": verification})


def parse_ob2_jws(token: str, ctx: ImportContext, source: SourceFormat = SourceFormat.OB2_JWS) -> Attestation:
    header, assertion = jws_parts(token)
    verification = assertion.get("verification")
    creator = str(verification.get("creator", "")) if isinstance(verification, dict) else ""
    method = f"OB 2.0 signed assertion ({header.get('alg', '?')})"
    check: Check
    if not creator:
        check = Check(
            VerificationStatus.NOT_VERIFIABLE, method, "the assertion names no signing key (creator)"
        )
    elif ctx.fetcher is None:
        check = Check(
            VerificationStatus.NOT_VERIFIABLE, method, not_verifiable_offline(f"the key at {creator}")
        )
    else:
        check = _ob2_signed_check(token, creator, assertion, ctx, method)
    return _ob2_finish(assertion, check, None, source, ctx, token.strip())


def _pem_jwk(pem: str) -> dict[str, Any]:
    public = serialization.load_pem_public_key(pem.encode())
    kind = (
        "RSA"
        if isinstance(public, rsa.RSAPublicKey)
        else "EC"
        if isinstance(public, ec.EllipticCurvePublicKey)
        else "OKP"
    )
    return dict(JWKRegistry.import_key(pem, kind).as_dict(private=False))


def _creator_key(creator: str, ctx: ImportContext) -> ResolvedKey:
    """OB 2.0 `verification.creator`: a CryptographicKey document (PEM) or a JWK, at the issuer's URL."""
    assert ctx.fetcher is not None
    try:
        document = json.loads(ctx.fetcher.get(creator))
        pem = document.get("publicKeyPem") if isinstance(document, dict) else None
        jwk = _pem_jwk(str(pem)) if pem else document
    except (FetchError, ValueError, TypeError, JoseError) as exc:
        raise KeyUnavailable(f"the key at {creator} could not be read: {exc}") from None
    if not isinstance(jwk, dict):
        raise KeyUnavailable(f"the key at {creator} is neither a PEM key document nor a JWK")
    return ResolvedKey(jwk, f"the key published at {creator}", published_by_issuer=True, method=creator)


def _ob2_signed_check(
    token: str, creator: str, assertion: dict[str, Any], ctx: ImportContext, method: str
) -> Check:
    try:
        key = _creator_key(creator, ctx)
        verify_jws(token, key)
    except KeyUnavailable as exc:
        return Check(VerificationStatus.NOT_VERIFIABLE, method, str(exc))
    except ValueError as exc:
        return Check(VerificationStatus.INVALID, method, f"the signature does not match: {exc}")
    issuer = _badge_object(assertion.get("badge"), ctx).get("issuer")
    return _signature_check(key, issuer if isinstance(issuer, str) else None, ctx, method)


# ------------------------------------------------------------------------------ routing by content


def is_ob3(document: dict[str, Any]) -> bool:
    types = document.get("type")
    types = types if isinstance(types, list) else [types]
    return any(
        t in ("OpenBadgeCredential", "AchievementCredential", "EndorsementCredential", "VerifiableCredential")
        for t in types
    )


def is_ob2(document: dict[str, Any]) -> bool:
    return document.get("type") == "Assertion" or "recipient" in document and "badge" in document


def parse_payload(payload: str, ctx: ImportContext, *, baked: str | None = None) -> Attestation:
    """JSON or compact JWS/JWT text (from a file or a baked image): OB 2.0 or 3.0 by its content.

    `baked` = "png" / "svg" when the payload came out of a baked image.
    """
    text = payload.strip()
    if text.startswith("{"):
        document = load_json_object(text, "badge JSON")
        if is_ob3(document):
            return parse_ob3_json(text, ctx, _source("ob3", "json", baked))
        if is_ob2(document):
            return parse_ob2_json(text, ctx, _source("ob2", "json", baked))
        raise ImportRejected("JSON that is neither an Open Badges 2.0 assertion nor a verifiable credential")
    if text.count(".") == 2:
        _header, body = jws_parts(text)
        if isinstance(body.get("vc"), dict) or is_ob3(body):
            return parse_ob3_jwt(text, ctx, _source("ob3", "jwt", baked))
        if is_ob2(body):
            return parse_ob2_jws(text, ctx, _source("ob2", "jws", baked))
        raise ImportRejected("a signed token that carries neither a credential nor an assertion")
    raise ImportRejected("badge data is neither JSON nor a compact JWS/JWT")


def _source(version: str, kind: str, baked: str | None) -> SourceFormat:
    return SourceFormat(f"{version}-{baked or kind}")
