"""Finding the public key behind a verification method: our own, did:key, a multikey fragment, or a
key document fetched from the issuer's domain (only when the network is on).

Keys are returned as public JWKs, which both the Data Integrity check (Ed25519) and the JOSE libraries
take. `ResolvedKey.source` says in plain words where the key came from, for the verification reason.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, urldefrag, urlsplit

import base58
from cryptography.hazmat.primitives.asymmetric import ec

from services.importer.domain import FetchError, ImportContext, not_verifiable_offline

_ED25519_PREFIX = b"\xed\x01"
_P256_PREFIX = b"\x80\x24"


class KeyUnavailable(Exception):
    """No key could be found; the message is the reason shown to the learner."""


@dataclass(frozen=True)
class ResolvedKey:
    jwk: dict[str, Any]
    source: str
    published_by_issuer: bool = False  # fetched from the key's own domain / DID document
    own: bool = False  # one of our own signing keys
    method: str = ""  # the verification method (or kid) it was resolved from

    def speaks_for(self, issuer_id: str | None) -> bool:
        """The key is the issuer's: published under the issuer's own DID or origin, or our own.

        A key that only the credential itself supplies (an embedded JWK, a multikey fragment that was
        not fetched) proves who signed, not that the signer is the issuer the credential names.
        """
        if self.own:
            return True
        if not issuer_id or not self.method:
            return False
        if self.method.startswith("did:key:"):
            return urldefrag(self.method).url == issuer_id
        if not self.published_by_issuer:
            return False
        if self.method.startswith("did:"):
            return urldefrag(self.method).url == issuer_id
        key_origin, issuer_origin = urlsplit(self.method), urlsplit(issuer_id)
        return (key_origin.scheme, key_origin.netloc) == (issuer_origin.scheme, issuer_origin.netloc)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def multikey_to_jwk(value: str) -> dict[str, Any]:
    """`z6Mk...` (Ed25519) or `zDn...` (P-256) multibase multikey -> public JWK."""
    if not value.startswith("z"):
        raise KeyUnavailable(f"key {value[:20]}... is not multibase base58btc")
    try:
        raw = base58.b58decode(value[1:])
    except ValueError:
        raise KeyUnavailable("key is not valid base58") from None
    if raw.startswith(_ED25519_PREFIX) and len(raw) == 34:
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw[2:])}
    if raw.startswith(_P256_PREFIX) and len(raw) == 35:
        point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw[2:]).public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": _b64url(point.x.to_bytes(32, "big")),
                "y": _b64url(point.y.to_bytes(32, "big"))}
    raise KeyUnavailable("key type is neither Ed25519 nor P-256")


def did_web_url(did: str) -> str:
    """did:web:example.com:issuers:1 -> https://example.com/issuers/1/did.json (DID Web method 3.2)."""
    parts = did.removeprefix("did:web:").split(":")
    host = unquote(parts[0])
    path = "/".join(parts[1:])
    return f"https://{host}/{path}/did.json" if path else f"https://{host}/.well-known/did.json"


def _key_of(entry: dict[str, Any]) -> dict[str, Any] | None:
    if isinstance(entry.get("publicKeyJwk"), dict):
        return {k: v for k, v in entry["publicKeyJwk"].items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
    if isinstance(entry.get("publicKeyMultibase"), str):
        return multikey_to_jwk(entry["publicKeyMultibase"])
    return None


def _find_in_document(document: Any, method: str) -> dict[str, Any] | None:
    """The key `method` names inside a fetched DID document, key document or issuer profile."""
    if not isinstance(document, dict):
        return None
    if document.get("id") == method:
        return _key_of(document)
    for name in ("verificationMethod", "assertionMethod", "publicKey"):
        entries = document.get(name)
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("id") in (method, "#" + urldefrag(method).fragment):
                return _key_of(entry)
    return None


def _fetch_document(url: str, ctx: ImportContext) -> Any:
    if ctx.fetcher is None:
        raise KeyUnavailable(not_verifiable_offline(f"the issuer's key at {url}"))
    try:
        return json.loads(ctx.fetcher.get(url))
    except FetchError as exc:
        raise KeyUnavailable(f"the issuer's key at {url} could not be fetched: {exc}") from None
    except ValueError:
        raise KeyUnavailable(f"the issuer's key document at {url} is not JSON") from None


def resolve(method: str, ctx: ImportContext) -> ResolvedKey:
    """The key a proof's verification method (or a JWT's kid) names; raises KeyUnavailable."""
    return replace(_resolve(method, ctx), method=method)


def _resolve(method: str, ctx: ImportContext) -> ResolvedKey:
    if ctx.own_key is not None:
        own = ctx.own_key(method)
        if own is not None:
            return ResolvedKey(own, "our own signing key", published_by_issuer=True, own=True)
    if method.startswith("did:key:"):
        return ResolvedKey(multikey_to_jwk(method.removeprefix("did:key:").split("#")[0]), "a did:key")
    if method.startswith("did:web:"):
        base = urldefrag(method).url
        key = _find_in_document(_fetch_document(did_web_url(base), ctx), method)
        if key is None:
            raise KeyUnavailable(f"the DID document of {base} does not list {method}")
        return ResolvedKey(key, f"DID document of {base}", published_by_issuer=True)
    if method.startswith(("https://", "http://")):
        return _resolve_url(method, ctx)
    raise KeyUnavailable(f"unsupported verification method {method[:80]!r}")


def _resolve_url(method: str, ctx: ImportContext) -> ResolvedKey:
    url, fragment = urldefrag(method)
    if ctx.fetcher is not None:
        key = _find_in_document(_fetch_document(url, ctx), method)
        if key is None:
            raise KeyUnavailable(f"the key document at {url} does not list {method}")
        return ResolvedKey(key, f"key document at {url}", published_by_issuer=True)
    if fragment.startswith("z"):  # the fragment is the multikey itself: checkable, not attributable
        return ResolvedKey(multikey_to_jwk(fragment),
                           f"the key written in the verification method's fragment (not confirmed at {url}: "
                           "network fetches are off)")
    raise KeyUnavailable(not_verifiable_offline(f"the issuer's key at {url}"))
