"""OpenID for Verifiable Credential Issuance 1.0, pre-authorized code flow: what the issuer publishes
(its metadata and the OAuth authorization server's), the offers it hands out, the nonces it issues and
the wallet's key proof it checks. Pure: no clock, database or web framework (the backpack's wallets.py
is the endpoint side).

A wallet scans an offer (`openid-credential-offer://?credential_offer=…`), trades its pre-authorized code
for an access token, asks for a nonce, and requests the credential with a JWT signed by its own key
(`typ: openid4vci-proof+jwt`, `aud` = the issuer identifier, the nonce). The credential it gets is the
learner's Open Badges 3.0 credential with `credentialSubject.id` = the wallet key's DID.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import struct
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey

from .jsonld import CREDENTIALS_V2, OB3_CONTEXT
from .multikey import MultikeyError, b64url, b64url_decode, multikey_to_jwk

PRE_AUTHORIZED_GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
OFFER_SCHEME = "openid-credential-offer://"
PROOF_TYP = "openid4vci-proof+jwt"
PROOF_ALGORITHMS = ("EdDSA", "ES256")
CREDENTIAL_TYPE = ["VerifiableCredential", "OpenBadgeCredential"]
JWT_VC = "OpenBadgeCredential_jwt_vc_json"
LDP_VC = "OpenBadgeCredential_ldp_vc"
CONFIGURATIONS = {JWT_VC: "jwt_vc_json", LDP_VC: "ldp_vc"}  # configuration id -> format
NONCE_SECONDS = 300  # a nonce older than this is stale: the wallet asks for a new one
PROOF_MAX_SKEW = 300  # seconds a proof's `iat` may be away from now
MAX_PROOF_LENGTH = 8_192  # characters of a key proof JWT (a did:key or a JWK header is ~1 KB)

# Wallets sign key proofs with "EdDSA" (the OpenID4VCI examples, Credo); RFC 9864 names it "Ed25519" now.
warnings.filterwarnings("ignore", "EdDSA is deprecated", SecurityWarning)

PATHS = {
    "token": "/openid4vci/token",
    "nonce": "/openid4vci/nonce",
    "credential": "/openid4vci/credential",
}


class Openid4vciError(ValueError):
    """An OAuth / OpenID4VCI error response: `error` is the code a wallet reads (`invalid_proof`...)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description = error, description


# --- what the issuer publishes -------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuerDisplay:
    """Names shown in a wallet, per language."""

    issuer_name: str
    credential_name: dict[str, str]  # locale -> name of the credential kind
    credential_description: dict[str, str]
    claims: list[tuple[list[str], dict[str, str]]]  # JSON path -> locale -> label


def issuer_metadata(public_url: str, display: IssuerDisplay) -> dict[str, Any]:
    """Credential Issuer Metadata (OpenID4VCI 1.0, sec. 12.2), served at
    `/.well-known/openid-credential-issuer`; the issuer is its own authorization server."""
    locales = sorted(display.credential_name)
    credential_display = [
        {
            "name": display.credential_name[locale],
            "locale": locale,
            "description": display.credential_description[locale],
            "background_color": "#12355b",
            "text_color": "#ffffff",
        }
        for locale in locales
    ]
    claims = [
        {"path": path, "display": [{"name": labels[locale], "locale": locale} for locale in locales]}
        for path, labels in display.claims
    ]
    common = {
        "cryptographic_binding_methods_supported": ["did:key", "did:jwk", "jwk"],
        "proof_types_supported": {"jwt": {"proof_signing_alg_values_supported": list(PROOF_ALGORITHMS)}},
        "credential_metadata": {"display": credential_display, "claims": claims},
    }
    return {
        "credential_issuer": public_url,
        "authorization_servers": [public_url],
        "credential_endpoint": public_url + PATHS["credential"],
        "nonce_endpoint": public_url + PATHS["nonce"],
        "display": [{"name": display.issuer_name, "locale": locale} for locale in locales],
        "credential_configurations_supported": {
            JWT_VC: {
                "format": "jwt_vc_json",
                "credential_signing_alg_values_supported": ["ES256"],
                "credential_definition": {"type": CREDENTIAL_TYPE},
                **common,
            },
            LDP_VC: {
                "format": "ldp_vc",
                "credential_signing_alg_values_supported": ["eddsa-rdfc-2022"],
                "credential_definition": {"@context": [CREDENTIALS_V2, OB3_CONTEXT], "type": CREDENTIAL_TYPE},
                **common,
            },
        },
    }


def authorization_server_metadata(public_url: str) -> dict[str, Any]:
    """OAuth 2.0 Authorization Server Metadata (RFC 8414) for the pre-authorized code grant alone: the
    offer is the authorization, so there is no authorization endpoint."""
    return {
        "issuer": public_url,
        "token_endpoint": public_url + PATHS["token"],
        "grant_types_supported": [PRE_AUTHORIZED_GRANT],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "pre-authorized_grant_anonymous_access_supported": True,
    }


# --- offers ----------------------------------------------------------------------------------------------


def credential_offer(
    public_url: str, configurations: Sequence[str], pre_authorized_code: str, tx_code_length: int | None
) -> dict[str, Any]:
    grant: dict[str, Any] = {"pre-authorized_code": pre_authorized_code}
    if tx_code_length:
        grant["tx_code"] = {
            "input_mode": "numeric",
            "length": tx_code_length,
            "description": "The code shown next to the offer / Kod widoczny obok oferty",
        }
    return {
        "credential_issuer": public_url,
        "credential_configuration_ids": list(configurations),
        "grants": {PRE_AUTHORIZED_GRANT: grant},
    }


def offer_uri(offer: dict[str, Any]) -> str:
    """The same-device link and QR code content: the offer by value."""
    return OFFER_SCHEME + "?credential_offer=" + quote(json.dumps(offer, separators=(",", ":")), safe="")


def new_secret() -> str:
    """A pre-authorized code or an access token: 256 random bits."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What is stored of a code or token: its SHA-256, so the table cannot be turned back into them."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_tx_code(length: int = 6) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(length))


# --- nonces ----------------------------------------------------------------------------------------------


class Nonces:
    """Stateless `c_nonce` values: the issue time, 128 random bits and an HMAC over both. Any process
    with the same secret checks them; one older than NONCE_SECONDS is stale."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"openid4vci c_nonce", hashlib.sha256).digest()

    def issue(self, now: float) -> str:
        body = struct.pack(">Q", int(now)) + secrets.token_bytes(16)
        return b64url(body + self._mac(body))

    def fresh(self, nonce: str, now: float) -> bool:
        try:
            raw = _b64decode(nonce)
        except ValueError:
            return False
        if len(raw) != 40 or not hmac.compare_digest(raw[24:], self._mac(raw[:24])):
            return False
        issued = struct.unpack(">Q", raw[:8])[0]
        return issued - 5 <= now <= issued + NONCE_SECONDS

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:16]


def _b64decode(text: str, limit: int = 200) -> bytes:
    if not text or len(text) > limit:
        raise ValueError("empty or too long")
    return b64url_decode(text)


# --- the wallet's key proof ------------------------------------------------------------------------------


def holder_of_proof(proof: object, audience: str, nonce_is_fresh: Callable[[str], bool], now: float) -> str:
    """The DID of the key that signed the key proof (OpenID4VCI 1.0, appendix F.1): the credential is
    bound to it. Raises Openid4vciError `invalid_proof` (malformed, badly signed, wrong audience, too old
    or new) or `invalid_nonce` (missing, unknown or stale nonce)."""
    if not isinstance(proof, str) or len(proof) > MAX_PROOF_LENGTH or proof.count(".") != 2:
        raise Openid4vciError("invalid_proof", "the proof is not a compact JWT")
    header = _header(proof)
    if header.get("typ") != PROOF_TYP:
        raise Openid4vciError("invalid_proof", f"the proof's typ must be {PROOF_TYP}")
    algorithm = header.get("alg")
    if algorithm not in PROOF_ALGORITHMS:
        raise Openid4vciError(
            "invalid_proof", f"the proof's alg must be one of {', '.join(PROOF_ALGORITHMS)}"
        )
    holder, public_jwk = _holder_key(header)
    try:
        key = OKPKey.import_key(public_jwk) if public_jwk["kty"] == "OKP" else ECKey.import_key(public_jwk)
        verified = jws.deserialize_compact(proof, key, algorithms=[algorithm])
    except (JoseError, ValueError, KeyError, TypeError):
        raise Openid4vciError("invalid_proof", "the proof's signature does not match its key") from None
    try:
        claims = json.loads(verified.payload)
    except ValueError:
        raise Openid4vciError("invalid_proof", "the proof's payload is not JSON") from None
    if not isinstance(claims, dict):
        raise Openid4vciError("invalid_proof", "the proof's payload is not a JSON object")
    audiences = claims.get("aud")
    if audience not in (audiences if isinstance(audiences, list) else [audiences]):
        raise Openid4vciError("invalid_proof", f"the proof's aud must be {audience}")
    issued = claims.get("iat")
    if not isinstance(issued, int | float) or abs(now - issued) > PROOF_MAX_SKEW:
        raise Openid4vciError("invalid_proof", "the proof's iat is missing or too far from now")
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not nonce_is_fresh(nonce):
        raise Openid4vciError("invalid_nonce", "the proof's nonce is missing, unknown or stale")
    return holder


def _header(token: str) -> dict[str, Any]:
    try:
        header = json.loads(_b64decode(token.split(".", 1)[0], MAX_PROOF_LENGTH))
    except ValueError:
        raise Openid4vciError("invalid_proof", "the proof's header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise Openid4vciError("invalid_proof", "the proof's header is not a JSON object")
    return header


def _holder_key(header: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(holder DID, public JWK) from the header's `kid` (a did:key URL) or `jwk` (then did:jwk)."""
    kid, jwk = header.get("kid"), header.get("jwk")
    if (kid is None) == (jwk is None):
        raise Openid4vciError(
            "invalid_proof", "the proof names its key by exactly one of kid (did:key) or jwk"
        )
    if kid is not None:
        if not isinstance(kid, str) or not kid.startswith("did:key:"):
            raise Openid4vciError("invalid_proof", "the proof's kid must be a did:key URL")
        did, _, fragment = kid.partition("#")
        multikey = did.removeprefix("did:key:")
        if fragment and fragment != multikey:
            raise Openid4vciError("invalid_proof", "the did:key URL's fragment is not its key")
        try:
            return did, multikey_to_jwk(multikey)
        except MultikeyError as exc:
            raise Openid4vciError("invalid_proof", f"the proof's did:key: {exc}") from None
    if not isinstance(jwk, dict) or jwk.get("kty") not in ("OKP", "EC"):
        raise Openid4vciError("invalid_proof", "the proof's jwk must be an OKP or EC public key")
    if any(name in jwk for name in ("d", "p", "q", "dp", "dq", "qi")):
        raise Openid4vciError("invalid_proof", "the proof's jwk holds a private key")
    members = ("crv", "kty", "x") if jwk["kty"] == "OKP" else ("crv", "kty", "x", "y")
    public = {name: jwk.get(name) for name in members}
    if not all(isinstance(value, str) for value in public.values()):
        raise Openid4vciError("invalid_proof", "the proof's jwk is incomplete")
    did = "did:jwk:" + b64url(json.dumps(public, separators=(",", ":"), sort_keys=True).encode())
    return did, public
