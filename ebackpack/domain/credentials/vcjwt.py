"""VC-JWT as Open Badges 3.0 sec. 8.2 defines it: the credential in the `vc` claim, ES256-signed.

Claims: `iss` = issuer id, `jti` = credential id, `sub` = subject id, `nbf` = validFrom, `exp` =
validUntil (when set), `iat` = signing time. The header `kid` names the verification method.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from .keys import SigningKey

ALGORITHM = "ES256"


class JwtError(ValueError):
    """The token is malformed, badly signed, or its claims disagree with its credential."""


def _epoch(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


def claims_for(credential: dict[str, Any], issued_at: int) -> dict[str, Any]:
    issuer = credential["issuer"]
    claims: dict[str, Any] = {
        "iss": issuer["id"] if isinstance(issuer, dict) else issuer,
        "jti": credential["id"],
        "nbf": _epoch(credential["validFrom"]),
        "iat": issued_at,
        "vc": credential,
    }
    subject = credential.get("credentialSubject", {}).get("id")
    if subject:
        claims["sub"] = subject
    if credential.get("validUntil"):
        claims["exp"] = _epoch(credential["validUntil"])
    return claims


def sign(credential: dict[str, Any], key: SigningKey, verification_method: str, issued_at: int) -> str:
    unsigned = {k: v for k, v in credential.items() if k != "proof"}
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": verification_method}
    return jwt.encode(header, claims_for(unsigned, issued_at), _private_jwk(key), algorithms=[ALGORITHM])


@functools.lru_cache(maxsize=16)
def _private_jwk(key: SigningKey) -> ECKey:
    """Imported once per key: reading the PEM for every credential took a third of a VC-JWT's time."""
    return ECKey.import_key(key.private_pem().decode())


def decode(token: str, public_jwk: dict[str, str | list[str]]) -> dict[str, Any]:
    """Verifies the signature and the OB 3.0 claim rules; returns the claims."""
    try:
        result = jwt.decode(token, ECKey.import_key(dict(public_jwk)), algorithms=[ALGORITHM])
    except (JoseError, ValueError) as exc:
        raise JwtError(f"VC-JWT signature check failed: {exc}") from None
    claims = dict(result.claims)
    vc = claims.get("vc")
    if not isinstance(vc, dict):
        raise JwtError("VC-JWT has no `vc` claim")
    expected = claims_for(vc, claims.get("iat", 0))
    for name in ("iss", "jti", "nbf", "sub", "exp"):
        if expected.get(name) != claims.get(name):
            raise JwtError(f"claim {name}={claims.get(name)!r} disagrees with the credential")
    return claims
