"""Open Badges 2.0 and 3.0: JSON, JWS / VC-JWT, and what baked images carry, into one Attestation.

Verification, strongest first:
- OB 3.0 Data Integrity (`eddsa-rdfc-2022`, `eddsa-2022`, `Ed25519Signature2020`) and VC-JWT: the
  signature against the key the proof names (see keys.py for where keys come from);
- OB 2.0 hosted: the assertion as its issuer serves it at its `id` (network), or our own database;
- OB 2.0 signed (JWS): the key at `verification.creator`, listed in the issuer profile (network).
Then, in this order: the validity window (not yet valid = invalid), revocation (status list, revocation
list, 410 / `revoked`), expiry. A token that is unsigned, or whose algorithm is not a signature we accept,
is invalid before anything is fetched.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import base58
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

from ebackpack.domain.credentials.dataintegrity import hash_data
from services.importer.canon import canonize  # bounded: a canonicalization bomb is rejected
from services.importer.domain import (
    Attestation,
    FetchError,
    ImportContext,
    ImportRejected,
    IssuerRef,
    OwnCredential,
    RecipientMatch,
    Said,
    SourceFormat,
    Verification,
    VerificationStatus,
    email_matches,
    has_expired,
    joined,
    not_yet_valid,
    offline,
    say,
)
from services.importer.formats.keys import (
    KeyUnavailable,
    ResolvedKey,
    find_in_document,
    issuer_origin,
    jwk_thumbprint_uri,
    resolve,
    same_origin,
)

ED25519_SUITES = {"eddsa-rdfc-2022", "eddsa-2022"}
MAX_STATUS_LIST_BYTES = 2 * 1024 * 1024  # 16 Mi entries: larger lists are refused, not inflated
# JWS algorithm -> the key type (and curves) that can make it. Only public-key signatures: an HMAC
# (HS256...) "verified" with the issuer's public key as the secret is forgeable by anyone (RFC 8725 3.1).
KEY_FOR_ALGORITHM: dict[str, tuple[str, frozenset[str]]] = {
    **{f"{family}{size}": ("RSA", frozenset()) for family in ("RS", "PS") for size in (256, 384, 512)},
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "ES256K": ("EC", frozenset({"secp256k1"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
    "Ed25519": ("OKP", frozenset({"Ed25519"})),  # RFC 9864's fully specified names
    "Ed448": ("OKP", frozenset({"Ed448"})),
}
JWS_ALGORITHMS = list(KEY_FOR_ALGORITHM)
# Critical header parameters we implement (RFC 7515 4.1.11). VC-JWT and OB 2.0 define none, so a token
# that marks any as critical asks for processing we do not do, and is refused.
UNDERSTOOD_CRIT: frozenset[str] = frozenset()
_GONE = re.compile(r"answered HTTP 410\b")


# ------------------------------------------------------------------------------------------ shared


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


def parse_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_numeric_date(value: Any) -> datetime | None:
    """A JWT NumericDate (seconds since the epoch), or None when it is absent or out of range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


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


def header_problem(header: dict[str, Any], token: str) -> Said | None:
    """Why a token is refused from its header alone (before any key is looked up), or None."""
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        return say("the token names no signature algorithm (alg), so it is not signed")
    if alg.lower() == "none":
        return say('the token is unsigned (alg "none"): anyone could have written it')
    if alg.upper().startswith("HS"):
        return say(
            "the token uses {alg}, a shared-secret code and not a signature: anyone who has the issuer's "
            "public key could make it",
            alg=alg,
        )
    if alg not in KEY_FOR_ALGORITHM:
        return say(
            "the token's algorithm {alg} is not a signature we accept ({accepted})",
            alg=alg[:40],
            accepted=", ".join(JWS_ALGORITHMS),
        )
    if not token.strip().rsplit(".", 1)[-1]:
        return say("the token carries no signature")
    crit = header.get("crit")
    if crit is None:
        return None
    if not isinstance(crit, list) or not crit or not all(isinstance(name, str) for name in crit):
        return say("the token's 'crit' header is not a list of parameter names")
    unknown = [name for name in crit if name not in UNDERSTOOD_CRIT]
    if unknown:
        return say(
            "the token marks header parameters we do not implement as critical ({names}), so it must "
            "be refused (RFC 7515)",
            names=", ".join(name[:40] for name in unknown[:5]),
        )
    return None


def _key_kind(jwk: dict[str, Any]) -> str:
    kty, crv = str(jwk.get("kty", "?"))[:10], jwk.get("crv")
    return f"{kty} {str(crv)[:10]}" if crv else kty


def key_problem(alg: str, jwk: dict[str, Any]) -> Said | None:
    """The algorithm the token claims must be one its key can make (no RSA token "checked" with an
    EC key, no ES256 header on an Ed25519 key)."""
    kty, curves = KEY_FOR_ALGORITHM[alg]
    if jwk.get("kty") != kty or (curves and jwk.get("crv") not in curves):
        return say(
            "the token claims {alg}, which its key ({key}) cannot make: the algorithm does not match the key",
            alg=alg,
            key=_key_kind(jwk),
        )
    return None


def _issuer_id(issuer: Any) -> str | None:
    if isinstance(issuer, dict):
        return str(issuer.get("id") or "") or None
    return str(issuer) if isinstance(issuer, str) else None


def _signature_check(key: ResolvedKey, issuer_id: str | None, ctx: ImportContext, method: str) -> Check:
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


def _listed(entries: Any, ids: set[str]) -> tuple[bool, str | None]:
    """(listed, its reason) in a revocation list's entries: ids, or objects with `id` / `uid`."""
    for item in entries if isinstance(entries, list) else []:
        if isinstance(item, str) and item in ids:
            return True, None
        if isinstance(item, dict) and ({str(item.get("id", "")), str(item.get("uid", ""))} & ids):
            reason = item.get("revocationReason")
            return True, str(reason)[:500] if isinstance(reason, str) and reason.strip() else None
    return False, None


def _revocation_list(entry: dict[str, Any], credential_id: str, ctx: ImportContext) -> Revocation:
    url = str(entry.get("id", ""))
    listing = _fetch_json(url, ctx)
    subject = listing.get("credentialSubject")
    entries = listing.get("revokedCredentials") or (
        subject.get("revokedCredentials") if isinstance(subject, dict) else None
    )
    listed, reason = _listed(entries, {credential_id} - {""})
    if listed:
        return Revocation(
            revoked=Said(reason, reason) if reason else say("listed in the revocation list {url}", url=url)
        )
    return Revocation(note=say("revocation list {url} checked", url=url))


def ob3_revocation(credential: dict[str, Any], own: OwnCredential | None, ctx: ImportContext) -> Revocation:
    if own is not None:
        revoked = own.revoked_reason or "revoked"
        return Revocation(
            revoked=Said(revoked, revoked) if own.revoked else None,
            note=say("status checked in our database"),
        )
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


def _own(credential_id: str, ctx: ImportContext) -> OwnCredential | None:
    return ctx.own_credential(credential_id) if ctx.own_credential and credential_id else None


# ---------------------------------------------------------------------------- OB 3.0 verification


def _ed25519_key(jwk: dict[str, Any]) -> ed25519.Ed25519PublicKey:
    """Raises ValueError for a key of another type: an Ed25519 proof cannot come from it."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise TypeError("not an Ed25519 key")
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
        what = (
            say("the credential has no proof")
            if not credential.get("proof")
            else say("the credential has a proof type we cannot check")
        )
        return Check(VerificationStatus.NOT_VERIFIABLE, "none", what)
    suite = str(proof.get("cryptosuite") or proof.get("type"))
    method_id = str(proof.get("verificationMethod", ""))
    method = f"Data Integrity {suite}"
    try:
        key = resolve(method_id, ctx)
    except KeyUnavailable as exc:
        return Check(VerificationStatus.NOT_VERIFIABLE, method, exc.reason)
    try:
        public_key = _ed25519_key(key.jwk)
    except TypeError:
        return Check(
            VerificationStatus.INVALID,
            method,
            say(
                "the proof ({suite}) needs an Ed25519 key, but its verification method is a {key} key",
                suite=suite,
                key=_key_kind(key.jwk),
            ),
        )
    except (KeyError, ValueError):
        return Check(VerificationStatus.INVALID, method, say("the verification method's key is malformed"))
    unsigned = {k: v for k, v in credential.items() if k != "proof"}
    options = {"@context": credential.get("@context")} | {k: v for k, v in proof.items() if k != "proofValue"}
    try:
        data = hash_data(canonize(options), canonize(unsigned))
    except ImportRejected:  # over the canonicalization budget: the whole upload is refused with it
        raise
    except Exception as exc:  # pyld raises its own error types, wrapping ours (unknown context)
        return Check(
            VerificationStatus.NOT_VERIFIABLE,
            method,
            say("the document cannot be canonicalized: {error}", error=str(exc)[:300]),
        )
    value = str(proof.get("proofValue", ""))
    try:
        public_key.verify(base58.b58decode(value[1:]) if value.startswith("z") else b"", data)
    except (InvalidSignature, ValueError):
        return Check(
            VerificationStatus.INVALID,
            method,
            say(
                "the signature does not match the document: it was changed after signing or signed "
                "with another key"
            ),
        )
    return _signature_check(key, issuer_id, ctx, method)


def parse_ob3_json(
    text: str, ctx: ImportContext, source: SourceFormat = SourceFormat.OB3_JSON
) -> Attestation:
    credential = load_json_object(text, "Open Badges 3.0 credential")
    return _ob3_result(credential, _data_integrity_check(credential, ctx), source, ctx, text)


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


def _ob3_result(
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


def _jws_key(header: dict[str, Any], issuer_id: str | None, ctx: ImportContext) -> ResolvedKey:
    """An absolute `kid` (DID, URL) first, then an embedded `jwk`, then the issuer profile: the key a
    relative `kid` names in it, or its `publicKey`."""
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    if kid and kid.startswith(("did:", "https://", "http://")):
        return resolve(kid, ctx)
    if isinstance(header.get("jwk"), dict):
        return ResolvedKey(dict(header["jwk"]), say("the key embedded in the token's own header"))
    if issuer_id and issuer_id.startswith(("https://", "http://")):
        jwk = _profile_key(issuer_id, kid, ctx)
        if jwk is not None:
            return ResolvedKey(
                jwk,
                say("issuer profile {issuer}", issuer=issuer_id),
                published_by_issuer=True,
                method=issuer_id,
                fetched_from=issuer_id,
            )
    raise KeyUnavailable(
        say("the token names no key (no kid, no jwk) and the issuer publishes none we can read")
    )


def _profile_key(issuer_id: str, kid: str | None, ctx: ImportContext) -> dict[str, Any] | None:
    if ctx.fetcher is None:
        raise KeyUnavailable(offline(say("the issuer profile {issuer} (its public key)", issuer=issuer_id)))
    try:
        profile = json.loads(ctx.fetcher.get(issuer_id))
    except (FetchError, ValueError) as exc:
        raise KeyUnavailable(
            say("the issuer profile {issuer} could not be read: {error}", issuer=issuer_id, error=exc)
        ) from None
    if not isinstance(profile, dict) or profile.get("id") not in (None, issuer_id):
        return None
    if kid:
        absolute = issuer_id + (kid if kid.startswith("#") else "#" + kid)
        return find_in_document(profile, absolute) or find_in_document(profile, kid)
    jwk = profile.get("publicKey")
    return jwk if isinstance(jwk, dict) else None


class _ImportJWSRegistry(jws.JWSRegistry):
    max_header_length = 8192  # headers may embed the signer's RSA key (`jwk`)
    max_payload_length = 4 * 1024 * 1024  # credentials may embed their badge image


def verify_jws(token: str, key: ResolvedKey, alg: str) -> bytes:
    """The verified payload; raises ValueError when the signature does not match. Only `alg` (already
    checked against the key's type) is allowed."""
    try:
        public = JWKRegistry.import_key(key.jwk)
        registry = _ImportJWSRegistry(algorithms=[alg], strict_check_header=False)
        return bytes(jws.deserialize_compact(token.strip(), public, registry=registry).payload)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None


def _signed_token_check(
    token: str, header: dict[str, Any], key: ResolvedKey, method: str | None = None
) -> Check | None:
    """INVALID when the key cannot make the token's algorithm or the signature does not match."""
    alg = str(header["alg"])
    method = method or f"VC-JWT {alg}"
    if problem := key_problem(alg, key.jwk):
        return Check(VerificationStatus.INVALID, method, problem)
    try:
        verify_jws(token, key, alg)
    except ValueError as exc:
        return Check(
            VerificationStatus.INVALID,
            method,
            say("the token's signature does not match: {error}", error=str(exc)[:300]),
        )
    return None


def parse_ob3_jwt(token: str, ctx: ImportContext, source: SourceFormat = SourceFormat.OB3_JWT) -> Attestation:
    header, claims = jws_parts(token)
    vc = claims.get("vc")
    credential: dict[str, Any] = vc if isinstance(vc, dict) else claims
    issuer_id = _issuer_id(credential.get("issuer")) or _issuer_id(claims.get("iss"))
    method = f"VC-JWT {str(header.get('alg', '?'))[:40]}"
    check: Check
    if problem := header_problem(header, token):
        check = Check(VerificationStatus.INVALID, method, problem)
    else:
        try:
            key = _jws_key(header, issuer_id, ctx)
            check = _signed_token_check(token, header, key) or _signature_check(key, issuer_id, ctx, method)
        except KeyUnavailable as exc:
            check = Check(VerificationStatus.NOT_VERIFIABLE, method, exc.reason)
    return _ob3_result(credential, check, source, ctx, token.strip(), claims)


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


@dataclass
class _Documents:
    """The badge classes, issuer profiles and lists one OB 2.0 import fetches, each fetched once.
    `enabled=False` (offline, or a token already refused) fetches nothing."""

    ctx: ImportContext
    enabled: bool = True
    _seen: dict[str, tuple[dict[str, Any] | None, Said | None]] = field(default_factory=dict)

    def get(self, url: str) -> tuple[dict[str, Any] | None, Said | None]:
        """(the JSON object at `url`, or None and why not)."""
        if self.ctx.fetcher is None or not self.enabled:
            return None, offline(say("{url}", url=url))
        if url not in self._seen:
            self._seen[url] = self._fetch(url)
        return self._seen[url]

    def _fetch(self, url: str) -> tuple[dict[str, Any] | None, Said | None]:
        assert self.ctx.fetcher is not None
        try:
            document = json.loads(self.ctx.fetcher.get(url))
        except FetchError as exc:
            return None, say("{url} could not be fetched: {error}", url=url, error=exc)
        except ValueError:
            return None, say("{url} does not serve JSON", url=url)
        if not isinstance(document, dict):
            return None, say("{url} does not serve a JSON object", url=url)
        return document, None

    def remember(self, url: str, document: dict[str, Any]) -> None:
        """A document the import already holds (a key embedded in a profile) under its id."""
        self._seen.setdefault(url, (document, None))

    def node(self, value: Any) -> dict[str, Any]:
        """An embedded object as it is, or the object its URL serves ({} when that fails)."""
        if isinstance(value, dict):
            return value
        if isinstance(value, str) and value.startswith(("https://", "http://")):
            return self.get(value)[0] or {}
        return {}


def ob2_attestation(
    assertion: dict[str, Any],
    source: SourceFormat,
    verification: Verification,
    docs: _Documents,
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
        title=_text(badge.get("name")) or "Open Badge (badge details not available offline)",
        issuer=IssuerRef(
            name=_text(issuer.get("name")),
            url=_text(issuer.get("url")),
            identifier=_text(issuer.get("id")) or _issuer_id(badge.get("issuer")),
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


def _ob2_window(assertion: dict[str, Any]) -> Window:
    """OB 2.0: an assertion issued in the future is not valid (1EdTech validator's timestamp checks)."""
    return Window.of(
        starts=[("issuedOn", parse_datetime(assertion.get("issuedOn")))],
        ends=[("expires", parse_datetime(assertion.get("expires")))],
    )


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


def _issuer_of(badge_ref: Any, docs: _Documents) -> str | None:
    return _issuer_id(docs.node(badge_ref).get("issuer"))


def _issuer_profile(issuer_id: str | None, docs: _Documents) -> tuple[dict[str, Any] | None, Said | None]:
    """The issuer profile as the issuer serves it at its own id (the OB 2.0 identity of an issuer)."""
    if not issuer_id or not issuer_id.startswith(("https://", "http://")):
        return None, say("the issuer {issuer} has no profile URL", issuer=issuer_id or "(unnamed)")
    profile, problem = docs.get(issuer_id)
    if profile is None:
        return None, problem
    if profile.get("id") != issuer_id:
        return None, say(
            "the profile served at {url} names another id ({other})",
            url=issuer_id,
            other=str(profile.get("id"))[:200],
        )
    return profile, None


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


def _hosted_check(assertion: dict[str, Any], docs: _Documents) -> tuple[Check, Revocation]:
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
    issuer_id = _issuer_of(served.get("badge"), docs)
    profile = _issuer_profile(issuer_id, docs)[0] if issuer_id else None
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
    docs = _Documents(ctx)
    check, revocation = _hosted_check(assertion, docs)
    return _ob2_finish(assertion, check, revocation, source, docs, text)


def _ob2_finish(
    assertion: dict[str, Any],
    check: Check,
    revocation: Revocation,
    source: SourceFormat,
    docs: _Documents,
    original: str,
) -> Attestation:
    ctx = docs.ctx
    attestation = ob2_attestation(
        assertion, source, Verification.of(check.status, check.method, check.reason), docs, original
    )
    window = _ob2_window(assertion)
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


def parse_ob2_jws(token: str, ctx: ImportContext, source: SourceFormat = SourceFormat.OB2_JWS) -> Attestation:
    header, assertion = jws_parts(token)
    verification = assertion.get("verification")
    creator = str(verification.get("creator", "")) if isinstance(verification, dict) else ""
    method = f"OB 2.0 signed assertion ({str(header.get('alg', '?'))[:40]})"
    docs = _Documents(ctx)
    check, revocation = Check(VerificationStatus.NOT_VERIFIABLE, method, say("not checked")), NOT_CHECKED
    if problem := header_problem(header, token):
        check, docs.enabled = Check(VerificationStatus.INVALID, method, problem), False
    elif ctx.fetcher is None:
        where = say("the key at {url}", url=creator) if creator else say("the issuer profile's keys")
        check = Check(VerificationStatus.NOT_VERIFIABLE, method, offline(where))
        revocation = Revocation(note=offline(say("the issuer's revocation list")))
    else:
        found = creator or _signing_key_in_profile(token, header, assertion, docs, method)
        if isinstance(found, Check):
            check = found
        else:
            check, revocation = _ob2_signed_check(token, header, found, assertion, docs, method)
    return _ob2_finish(assertion, check, revocation, source, docs, token.strip())


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


def _creator_key(creator: str, docs: _Documents) -> ResolvedKey:
    """OB 2.0 `verification.creator`: a CryptographicKey document (PEM) or a JWK, at the issuer's URL."""
    document, problem = docs.get(creator)
    if document is None:
        raise KeyUnavailable(
            say("the key at {url} could not be read: {error}", url=creator, error=problem or say("not JSON"))
        )
    try:
        pem = document.get("publicKeyPem")
        jwk = _pem_jwk(str(pem)) if pem else document
    except (ValueError, TypeError, JoseError) as exc:
        raise KeyUnavailable(
            say("the key at {url} could not be read: {error}", url=creator, error=exc)
        ) from None
    return ResolvedKey(
        jwk,
        say("the key published at {url}", url=creator),
        published_by_issuer=True,
        method=creator,
        fetched_from=creator,
    )


def _listed_keys(public_key: Any) -> set[str]:
    entries = public_key if isinstance(public_key, list) else [public_key]
    return {str(e.get("id")) if isinstance(e, dict) else str(e) for e in entries if isinstance(e, dict | str)}


def _ob2_signed_check(
    token: str, header: dict[str, Any], creator: str, assertion: dict[str, Any], docs: _Documents, method: str
) -> tuple[Check, Revocation]:
    """The 1EdTech validator's steps: the signature with the creator key, the key listed in the issuer
    profile the issuer serves at its id (`verify_key_ownership`), the assertion not in the issuer's
    `revocationList` (`verify_signed_assertion_not_revoked`)."""
    try:
        key = _creator_key(creator, docs)
    except KeyUnavailable as exc:
        return Check(VerificationStatus.NOT_VERIFIABLE, method, exc.reason), NOT_CHECKED
    if failed := _signed_token_check(token, header, key, method):
        return failed, NOT_CHECKED
    if not_yet_valid(_ob2_window(assertion).start, docs.ctx.now):  # invalid anyway: nothing more to fetch
        return Check(
            VerificationStatus.ISSUER_UNKNOWN, method, say("signature valid with {source}", source=key.source)
        ), NOT_CHECKED
    badge = docs.node(assertion.get("badge"))
    issuer_id = _issuer_id(badge.get("issuer"))
    profile, problem = _issuer_profile(issuer_id, docs)
    return _key_ownership(key, creator, issuer_id, profile, problem, docs, method), _ob2_revocation(
        assertion, profile or _embedded_issuer(badge), problem, docs
    )


MAX_PROFILE_KEYS = 5  # keys of an issuer profile tried for an assertion that names none


def _signing_key_in_profile(
    token: str, header: dict[str, Any], assertion: dict[str, Any], docs: _Documents, method: str
) -> str | Check:
    """OB 2.0: without `verification.creator`, the verifier tries the keys the issuer profile declares
    (`publicKey`). The id of the one that made the signature, or the check that none did."""
    issuer_id = _issuer_id(docs.node(assertion.get("badge")).get("issuer"))
    profile, problem = _issuer_profile(issuer_id, docs)
    if profile is None:
        return Check(
            VerificationStatus.NOT_VERIFIABLE,
            method,
            say(
                "the assertion names no signing key (creator), and the issuer profile could not be read: "
                "{why}",
                why=problem or say("no issuer profile"),
            ),
        )
    declared = profile.get("publicKey")
    entries = (declared if isinstance(declared, list) else [declared])[:MAX_PROFILE_KEYS]
    alg, tried = str(header["alg"]), 0
    for entry in entries:
        key_id = str(entry.get("id", "")) if isinstance(entry, dict) else str(entry or "")
        if not key_id:
            continue
        if isinstance(entry, dict) and entry.get("publicKeyPem"):
            docs.remember(key_id, entry)  # embedded in the profile: no fetch
        try:
            key = _creator_key(key_id, docs)
        except KeyUnavailable:
            continue
        tried += 1
        if key_problem(alg, key.jwk) is None:
            try:
                verify_jws(token, key, alg)
                return key_id
            except ValueError:
                continue
    if tried:
        return Check(
            VerificationStatus.INVALID,
            method,
            say(
                "the signature matches none of the {count} keys the issuer profile {issuer} declares",
                count=tried,
                issuer=issuer_id,
            ),
        )
    return Check(
        VerificationStatus.NOT_VERIFIABLE,
        method,
        say(
            "the assertion names no signing key (creator), and the issuer profile {issuer} declares none "
            "we can read",
            issuer=issuer_id,
        ),
    )


def _embedded_issuer(badge: dict[str, Any]) -> dict[str, Any] | None:
    """An issuer the badge class embeds, for an issuer without a profile URL. An issuer with one is read
    only from there: an embedded copy without its `revocationList` must not stand in for it."""
    issuer = badge.get("issuer")
    if not isinstance(issuer, dict) or str(issuer.get("id", "")).startswith(("https://", "http://")):
        return None
    return issuer


def _key_ownership(
    key: ResolvedKey,
    creator: str,
    issuer_id: str | None,
    profile: dict[str, Any] | None,
    problem: Said | None,
    docs: _Documents,
    method: str,
) -> Check:
    why = problem
    if profile is not None and creator in _listed_keys(profile.get("publicKey")):
        if issuer_origin(issuer_id) is not None:
            return Check(
                VerificationStatus.VERIFIED,
                method,
                say(
                    "signature valid with the key at {key}, which the issuer profile served at {issuer} "
                    "lists as its own",
                    key=creator,
                    issuer=issuer_id,
                ),
            )
        why = say("the issuer profile {issuer} is not served over https", issuer=issuer_id)
    elif profile is not None:
        why = say("the issuer profile {issuer} does not list the key (publicKey)", issuer=issuer_id)
    if issuer_id in docs.ctx.trusted_issuers and key.speaks_for(issuer_id):
        return Check(
            VerificationStatus.VERIFIED,
            method,
            say("signature valid ({source}); trusted issuer {issuer}", source=key.source, issuer=issuer_id),
        )
    return Check(
        VerificationStatus.ISSUER_UNKNOWN,
        method,
        say(
            "signature valid with the key at {key}, but it is not shown to be the issuer's: {why}; "
            "the issuer is not on our list of trusted issuers",
            key=creator,
            why=why or say("no issuer profile"),
        ),
    )


def _ob2_revocation(
    assertion: dict[str, Any], issuer: dict[str, Any] | None, problem: Said | None, docs: _Documents
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
    url = _issuer_id(reference) or "(embedded)"
    listing, trouble = (
        (reference, None)
        if isinstance(reference, dict) and "revokedAssertions" in reference
        else docs.get(url)
        if url.startswith(("https://", "http://"))
        else (None, say("not a URL"))
    )
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
    listed, reason = _listed(listing.get("revokedAssertions"), ids)
    if listed:
        return Revocation(
            revoked=Said(reason, reason) if reason else say("listed in the revocation list {url}", url=url)
        )
    return Revocation(note=say("revocation list {url} checked", url=url))


# ------------------------------------------------------------------------------ routing by content


def is_ob3(document: dict[str, Any]) -> bool:
    types = document.get("type")
    types = types if isinstance(types, list) else [types]
    return any(
        t in ("OpenBadgeCredential", "AchievementCredential", "EndorsementCredential", "VerifiableCredential")
        for t in types
    )


def is_ob2(document: dict[str, Any]) -> bool:
    """An assertion, or the stub an issuer serves for one it revoked (`id` and `revoked: true`)."""
    if document.get("revoked") is True and isinstance(document.get("id"), str):
        return True
    return document.get("type") == "Assertion" or "recipient" in document and "badge" in document


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
