"""Keys an issuer publishes outside a verification method (formats/keys.py resolves those): the OB 2.0
`verification.creator` key, and the key a VC-JWT names in its header or its issuer profile."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

from services.importer.domain import FetchError, ImportContext, Said, offline, say
from services.importer.formats.keys import KeyUnavailable, ResolvedKey, find_in_document, resolve
from services.importer.formats.openbadges.documents import Documents


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


def creator_key(creator: str, docs: Documents) -> ResolvedKey:
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
    return _published_at(creator, jwk, say("the key published at {url}", url=creator))


def token_key(header: dict[str, Any], issuer_id: str | None, ctx: ImportContext) -> ResolvedKey:
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
            return _published_at(issuer_id, jwk, say("issuer profile {issuer}", issuer=issuer_id))
    raise KeyUnavailable(
        say("the token names no key (no kid, no jwk) and the issuer publishes none we can read")
    )


def _published_at(url: str, jwk: dict[str, Any], source: Said) -> ResolvedKey:
    """A key the issuer serves at `url` (a key document, its profile): the issuer's when `url` is on the
    issuer's own origin (`ResolvedKey.binds_to`)."""
    return ResolvedKey(jwk, source, published_by_issuer=True, method=url, fetched_from=url)


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
