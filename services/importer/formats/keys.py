"""Finding the public key behind a verification method: our own, did:key, a multikey fragment, or a
key document fetched from the issuer's domain (only when the network is on).

Keys are returned as public JWKs, which both the Data Integrity check (Ed25519) and the JOSE libraries
take. `ResolvedKey.source` says in plain words where the key came from, for the verification reason;
`ResolvedKey.binds_to` says whether it shows that the key is the issuer's (see docs/importer.md).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, urldefrag, urlsplit

from joserfc.jwk import JWKRegistry

from ebackpack.domain.credentials import multikey
from services.importer.domain import FetchError, ImportContext, Said, offline, say

_DEFAULT_PORTS = {"https": 443, "http": 80}


class KeyUnavailable(Exception):
    """No key could be found; `reason` is what the learner is shown."""

    def __init__(self, reason: Said) -> None:
        super().__init__(reason.en)
        self.reason = reason


def issuer_origin(url: str | None) -> tuple[str, str, int] | None:
    """The origin an issuer can publish keys and assertions on: https, or http on a loopback address
    (reachable only when EBACKPACK_IMPORT_ALLOW_PRIVATE is on, i.e. in tests). None for anything else: a
    plain-http origin can be impersonated by anyone on the path, so it binds nothing."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if not host or "@" in parts.netloc or scheme not in _DEFAULT_PORTS:
        return None
    if scheme == "http" and not _loopback(host):
        return None
    return scheme, host, port or _DEFAULT_PORTS[scheme]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same_origin(url: str | None, issuer_id: str | None) -> bool:
    """`url` is on the issuer's origin; a did:web issuer's origin is the https host its DID names."""
    if issuer_id and issuer_id.startswith("did:web:"):
        issuer_id = did_web_url(urldefrag(issuer_id).url)
    origin = issuer_origin(url)
    return origin is not None and origin == issuer_origin(issuer_id)


def jwk_thumbprint_uri(jwk: dict[str, Any]) -> str | None:
    """RFC 9278 `urn:ietf:params:oauth:jwk-thumbprint:sha-256:…`: how a key that only the credential
    carries (an embedded `jwk`, a did:key) can be put on the trusted list."""
    try:
        return "urn:ietf:params:oauth:jwk-thumbprint:sha-256:" + str(JWKRegistry.import_key(jwk).thumbprint())
    except Exception:  # joserfc raises several types for a malformed key; then there is no thumbprint
        return None


@dataclass(frozen=True)
class ResolvedKey:
    jwk: dict[str, Any]
    source: Said
    published_by_issuer: bool = False  # fetched from the key's own domain / DID document
    own: bool = False  # one of our own signing keys
    method: str = ""  # the verification method (or kid) it was resolved from
    fetched_from: str = ""  # the URL the key document was read from (did:web: its did.json)

    def binds_to(self, issuer_id: str | None) -> bool:
        """The key is the issuer's by publication: our own, or published in a document on the issuer's
        own https origin (a key document, its profile, a did:web resolved there), or in the DID document
        of the issuer's own did:web. The Open Badges verification model: the issuer's identity is what
        it hosts."""
        if self.own:
            return True
        if not issuer_id or not self.published_by_issuer:
            return False
        if self.method.startswith("did:web:") and urldefrag(self.method).url == issuer_id:
            return True
        return same_origin(self.fetched_from, issuer_id)

    def speaks_for(self, issuer_id: str | None) -> bool:
        """A trusted-list entry for `issuer_id` may lift this key: it is published under the issuer's
        own DID or origin, or it is the issuer's did:key itself.

        A key that only the credential itself supplies (an embedded JWK, a multikey fragment that was
        not fetched) proves who signed, not that the signer is the issuer the credential names; such a
        key is trusted only by its thumbprint (`jwk_thumbprint_uri`).
        """
        if self.binds_to(issuer_id):
            return True
        if not issuer_id or not self.method:
            return False
        if self.method.startswith("did:key:"):
            return urldefrag(self.method).url == issuer_id
        if not self.published_by_issuer:
            return False
        if self.method.startswith("did:"):
            return urldefrag(self.method).url == issuer_id
        key_origin, issuer_origin_ = urlsplit(self.method), urlsplit(issuer_id)
        return (key_origin.scheme, key_origin.netloc) == (issuer_origin_.scheme, issuer_origin_.netloc)


def multikey_to_jwk(value: str) -> dict[str, Any]:
    """`z6Mk...` (Ed25519) or `zDn...` (P-256) multibase multikey -> public JWK."""
    try:
        return multikey.multikey_to_jwk(value)
    except multikey.MultikeyError as exc:
        raise KeyUnavailable(_multikey_reason(exc)) from None


def _multikey_reason(exc: multikey.MultikeyError) -> Said:
    """The learner's words for what the domain found wrong (say() takes literals: they are translated)."""
    if "base58btc" in exc.template:
        return say("key {key}... is not multibase base58btc", key=exc.fields.get("key", ""))
    if "base58" in exc.template:
        return say("key is not valid base58")
    if "P-256" in exc.template and "point" in exc.template:
        return say("key is not a point on P-256")
    return say("key type is neither Ed25519 nor P-256")


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


def find_in_document(document: Any, method: str) -> dict[str, Any] | None:
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
        raise KeyUnavailable(offline(say("the issuer's key at {url}", url=url)))
    try:
        return json.loads(ctx.fetcher.get(url))
    except FetchError as exc:
        raise KeyUnavailable(
            say("the issuer's key at {url} could not be fetched: {error}", url=url, error=exc)
        ) from None
    except ValueError:
        raise KeyUnavailable(say("the issuer's key document at {url} is not JSON", url=url)) from None


def _key_in_document(
    url: str, method: str, ctx: ImportContext, *, source: Said, missing: Said
) -> ResolvedKey:
    """The key `method` names in the document fetched from `url` (a DID document, a key document): published
    by whoever serves that document, which `binds_to` weighs by its origin."""
    key = find_in_document(_fetch_document(url, ctx), method)
    if key is None:
        raise KeyUnavailable(missing)
    return ResolvedKey(key, source, published_by_issuer=True, fetched_from=url)


def resolve(method: str, ctx: ImportContext) -> ResolvedKey:
    """The key a proof's verification method (or a JWT's kid) names; raises KeyUnavailable."""
    return replace(_resolve(method, ctx), method=method)


def _resolve(method: str, ctx: ImportContext) -> ResolvedKey:
    if ctx.own_key is not None:
        own = ctx.own_key(method)
        if own is not None:
            return ResolvedKey(own, say("our own signing key"), published_by_issuer=True, own=True)
    if method.startswith("did:key:"):
        return ResolvedKey(multikey_to_jwk(method.removeprefix("did:key:").split("#")[0]), say("a did:key"))
    if method.startswith("did:web:"):
        base = urldefrag(method).url
        return _key_in_document(
            did_web_url(base),
            method,
            ctx,
            source=say("DID document of {did}", did=base),
            missing=say("the DID document of {did} does not list {method}", did=base, method=method),
        )
    if method.startswith(("https://", "http://")):
        return _resolve_url(method, ctx)
    raise KeyUnavailable(say("unsupported verification method {method}", method=repr(method[:80])))


def _resolve_url(method: str, ctx: ImportContext) -> ResolvedKey:
    url, fragment = urldefrag(method)
    if ctx.fetcher is not None:
        return _key_in_document(
            url,
            method,
            ctx,
            source=say("key document at {url}", url=url),
            missing=say("the key document at {url} does not list {method}", url=url, method=method),
        )
    if fragment.startswith("z"):  # the fragment is the multikey itself: checkable, not attributable
        return ResolvedKey(
            multikey_to_jwk(fragment),
            say(
                "the key written in the verification method's fragment (not confirmed at "
                "{url}: network fetches are off)",
                url=url,
            ),
        )
    raise KeyUnavailable(offline(say("the issuer's key at {url}", url=url)))
