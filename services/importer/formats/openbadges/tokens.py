"""Compact JWS (OB 2.0 signed assertions, OB 3.0 VC-JWT): reading a token, refusing it by its header
alone, matching its algorithm to its key, and checking its signature."""

from __future__ import annotations

import base64
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

from services.importer.domain import ImportRejected, Said, VerificationStatus, say
from services.importer.formats.keys import ResolvedKey
from services.importer.formats.openbadges.fields import load_json_object
from services.importer.formats.openbadges.verdict import Check

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
    if problem := _algorithm_problem(header.get("alg")):
        return problem
    if not token.strip().rsplit(".", 1)[-1]:
        return say("the token carries no signature")
    return _critical_problem(header.get("crit"))


def _algorithm_problem(alg: Any) -> Said | None:
    """Only a public-key signature we accept: no `none`, no shared-secret HMAC."""
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
    return None


def _critical_problem(crit: Any) -> Said | None:
    """A `crit` header names extensions the verifier must understand; we understand none."""
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


def key_kind(jwk: dict[str, Any]) -> str:
    """A key's type and curve for a message ("OKP Ed25519"), cut short: it comes from the upload."""
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
            key=key_kind(jwk),
        )
    return None


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


def signed_token_check(
    token: str, header: dict[str, Any], key: ResolvedKey, method: str | None = None
) -> Check | None:
    """INVALID when the key cannot make the token's algorithm or the signature does not match; None when
    the signature holds (what the key's standing makes of it is the caller's to say)."""
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
