"""Multikey public keys (`z6Mk…` Ed25519, `zDn…` P-256: multibase base58btc of a multicodec prefix and
the key), as did:key identifiers and verification methods carry them, turned into public JWKs."""

from __future__ import annotations

import base64
from typing import Any

import base58
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

ED25519_PREFIX = b"\xed\x01"  # multicodec ed25519-pub
P256_PREFIX = b"\x80\x24"  # multicodec p256-pub, compressed point


class MultikeyError(ValueError):
    """Not a multikey this project reads. `template` and `fields` make the message (the importer shows
    it translated)."""

    def __init__(self, template: str, **fields: str) -> None:
        super().__init__(template.format(**fields))
        self.template, self.fields = template, fields


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """base64url without its padding (JOSE, multibase `u`) -> bytes; ValueError if it is not."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ed25519_public_key(jwk: dict[str, Any]) -> ed25519.Ed25519PublicKey:
    """Raises TypeError for a key of another type (an Ed25519 proof cannot come from it), KeyError or
    ValueError for a malformed one."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise TypeError("not an Ed25519 key")
    return ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(str(jwk["x"])))


def multikey_to_jwk(value: str) -> dict[str, Any]:
    """`z6Mk...` (Ed25519) or `zDn...` (P-256) multibase multikey -> public JWK."""
    if not value.startswith("z"):
        raise MultikeyError("key {key}... is not multibase base58btc", key=value[:20])
    try:
        raw = base58.b58decode(value[1:])
    except ValueError:
        raise MultikeyError("key is not valid base58") from None
    if raw.startswith(ED25519_PREFIX) and len(raw) == 34:
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw[2:])}
    if raw.startswith(P256_PREFIX) and len(raw) == 35:
        try:
            point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw[2:]).public_numbers()
        except ValueError:
            raise MultikeyError("key is not a point on P-256") from None
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(point.x.to_bytes(32, "big")),
            "y": b64url(point.y.to_bytes(32, "big")),
        }
    raise MultikeyError("key type is neither Ed25519 nor P-256")
