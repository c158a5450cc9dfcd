"""Signing keys: Ed25519 for Data Integrity proofs, P-256 (ES256) for VC-JWT.

Key ids are `<algorithm>-<n>`: rotation adds key n+1; older keys stay published so credentials they
signed still verify. Where keys are kept (files, the environment): ebackpack/adapters/keystore.py.
Private material never appears in a repr, a log line or an exception message.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import base58
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

Algorithm = Literal["Ed25519", "ES256"]
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PREFIX: dict[Algorithm, str] = {"Ed25519": "ed25519", "ES256": "p256"}
KID = re.compile(r"^(ed25519|p256)-(\d+)$")
ED25519_MULTICODEC = b"\xed\x01"


class SigningKeyError(ValueError):
    """Keys are missing, unreadable or of the wrong kind."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: Algorithm
    private_key: PrivateKey = field(repr=False)

    @property
    def number(self) -> int:
        return int(self.kid.rsplit("-", 1)[1])

    def public_multibase(self) -> str:
        """Multikey encoding of an Ed25519 public key: `z` + base58btc(0xed01 + raw key)."""
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return "z" + base58.b58encode(ED25519_MULTICODEC + raw).decode()

    def public_jwk(self) -> dict[str, str]:
        public = self.private_key.public_key()
        if isinstance(public, ed25519.Ed25519PublicKey):
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}
        assert isinstance(public, ec.EllipticCurvePublicKey)
        numbers = public.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[SigningKey, ...]

    def current(self, algorithm: Algorithm) -> SigningKey:
        candidates = [k for k in self.keys if k.algorithm == algorithm]
        if not candidates:
            raise SigningKeyError(f"no {algorithm} signing key")
        return max(candidates, key=lambda k: k.number)

    def find(self, kid: str) -> SigningKey | None:
        return next((k for k in self.keys if k.kid == kid), None)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def generate_key(algorithm: Algorithm) -> PrivateKey:
    return (
        ed25519.Ed25519PrivateKey.generate()
        if algorithm == "Ed25519"
        else ec.generate_private_key(ec.SECP256R1())
    )


def parse_key(kid: str, pem: bytes) -> SigningKey:
    if not KID.match(kid):
        raise SigningKeyError(f"key id {kid!r} is not <ed25519|p256>-<number>")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise SigningKeyError(f"key {kid}: not an unencrypted PKCS#8 PEM private key") from None
    if isinstance(key, ed25519.Ed25519PrivateKey) and kid.startswith("ed25519-"):
        return SigningKey(kid, "Ed25519", key)
    if (
        isinstance(key, ec.EllipticCurvePrivateKey)
        and isinstance(key.curve, ec.SECP256R1)
        and kid.startswith("p256-")
    ):
        return SigningKey(kid, "ES256", key)
    raise SigningKeyError(f"key {kid}: the key type does not match its name")


def keyring_from_json(text: str) -> KeyRing:
    problem = SigningKeyError("EBACKPACK_SIGNING_KEYS is not a JSON object of key id -> PEM")
    try:
        entries = json.loads(text)
    except json.JSONDecodeError:
        raise problem from None
    if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
        raise problem
    keys = tuple(parse_key(kid, pem.encode()) for kid, pem in entries.items())
    for algorithm in PREFIX:
        KeyRing(keys).current(algorithm)  # both kinds must be present
    return KeyRing(keys)


def did_web(public_url: str) -> str:
    """`https://host:port/path` -> `did:web:host%3Aport:path` (W3C did:web method)."""
    rest = public_url.split("://", 1)[1].rstrip("/")
    host, _, path = rest.partition("/")
    return ":".join(["did:web", host.replace(":", "%3A"), *[p for p in path.split("/") if p]])


def did_document(did: str, ring: KeyRing) -> dict[str, Any]:
    """The issuer's controller document: every key, current and retired, as an assertion method."""
    methods: list[dict[str, Any]] = []
    for key in sorted(ring.keys, key=lambda k: (k.algorithm, k.number)):
        method: dict[str, Any] = {"id": f"{did}#{key.kid}", "controller": did}
        if key.algorithm == "Ed25519":
            method |= {"type": "Multikey", "publicKeyMultibase": key.public_multibase()}
        else:
            method |= {"type": "JsonWebKey", "publicKeyJwk": key.public_jwk()}
        methods.append(method)
    return {
        "@context": [
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/multikey/v1",
            "https://w3id.org/security/jwk/v1",
        ],
        "id": did,
        "verificationMethod": methods,
        "assertionMethod": [m["id"] for m in methods],
    }
