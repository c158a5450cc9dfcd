"""Public Open Badges endpoints: OB 2.0 hosted JSON and baked badges, the issuer's DID document with its
keys, OB 3.0 achievements and the signed status lists. Nothing here shows a learner's name or e-mail.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from ebackpack.adapters.credential_exports import ExportError, assertion_json, badge_png, badge_svg
from ebackpack.adapters.credential_store import CredentialStore
from ebackpack.adapters.keystore import keyring_for
from ebackpack.adapters.persistence.tables import AwardRow
from ebackpack.domain.credentials import dataintegrity, ob2, ob3, statuslist, vcapi
from ebackpack.domain.credentials.facts import iso
from ebackpack.domain.credentials.keys import KeyRing, SigningKey, did_document
from ebackpack.domain.rules import AwardRule

from . import vcapi_status
from .deps import Store
from .web import download

LD_JSON = "application/ld+json"
router = APIRouter()


def _json(document: dict[str, Any], status_code: int = 200, media_type: str = LD_JSON) -> Response:
    return Response(
        json.dumps(document, ensure_ascii=False, indent=2),
        status_code=status_code,
        media_type=media_type,
        headers={"Access-Control-Allow-Origin": "*"},
    )


def _rule(store: CredentialStore, rule_id: str) -> AwardRule:
    rule = next((r for r in store.rules.rules if r.id == rule_id and r.badge), None)
    if rule is None:
        raise HTTPException(404, f"no badge {rule_id!r}")
    return rule


def _award(store: CredentialStore, code: str) -> AwardRow:
    award = store.award_by_code(code)
    if award is None:
        raise HTTPException(404, "no such assertion")
    _rule(store, award.rule_id)  # only badge rules have assertions
    return award


def _keyring(request: Request) -> KeyRing:
    """Read per request: a key rotated by `ebackpack keys rotate` is published without a restart."""
    return keyring_for(request.app.state.settings)


@router.get("/.well-known/did.json")
@router.get("/did.json")
def did(request: Request, store: Store) -> Response:
    return _json(did_document(store.urls.did, _keyring(request)), media_type="application/did+json")


@router.get("/ob2/issuer")
def ob2_issuer(store: Store) -> Response:
    return _json(ob2.issuer(store.rules.issuer, store.urls))


@router.get("/ob2/revocations")
def ob2_revocations(store: Store) -> Response:
    return _json(ob2.revocation_list(store.revoked(), store.urls))


@router.get("/ob2/badges/{rule_id}")
def ob2_badge(rule_id: str, store: Store) -> Response:
    return _json(ob2.badge_class(_rule(store, rule_id), store.urls))


@router.get("/ob2/badges/{rule_id}/image.png")
def badge_image_png(rule_id: str, store: Store) -> Response:
    rule = _rule(store, rule_id)
    return Response(badge_png(rule.name, store.rules.issuer.name), media_type="image/png")


@router.get("/ob2/badges/{rule_id}/image.svg")
def badge_image_svg(rule_id: str, store: Store) -> Response:
    rule = _rule(store, rule_id)
    return Response(badge_svg(rule.name, store.rules.issuer.name), media_type="image/svg+xml")


@router.get("/ob2/assertions/{code}")
def ob2_assertion(code: str, store: Store) -> Response:
    """200 with the assertion; 410 Gone with `revoked: true` once revoked (OB 2.0 hosted verification)."""
    award = _award(store, code)
    if award.status == "revoked":
        return _json(
            ob2.revoked_assertion(award.verification_code, award.revocation_reason or "", store.urls), 410
        )
    try:
        return _json(assertion_json(store, award))
    except ExportError as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/ob2/assertions/{code}/badge.{kind}")
def ob2_baked(code: str, kind: str, store: Store) -> Response:
    award = _award(store, code)
    if kind not in ("png", "svg"):
        raise HTTPException(404, "baked badges come as .png or .svg")
    if award.status == "revoked":
        raise HTTPException(410, "this badge was revoked")
    return download(store, award, f"ob2-{kind}")


@router.get("/ob3/achievements/{rule_id}")
def ob3_achievement(rule_id: str, store: Store) -> Response:
    rule = _rule(store, rule_id)
    shape = ob3.Shape(rule, store.rules.issuer, store.urls, expires=False)
    return _json({"@context": ob3.CONTEXT} | ob3.achievement(shape))


@router.get("/status/{number}")
def status_list(number: int, request: Request, store: Store) -> Response:
    """The signed BitstringStatusListCredential; re-signed only when its set of revoked entries changes.
    Lists from VCAPI_LISTS_FROM on hold VC-API credentials, each list signed as their issuer."""
    signer = _list_signer(request, store, number)
    if signer is None:
        raise HTTPException(404, f"no status list {number}")
    revoked = tuple(sorted(vcapi_status.revoked_on(store, number) or ()))
    cache: dict[tuple[int, tuple[int, ...]], dict[str, Any]] = request.app.state.status_lists
    if (number, revoked) not in cache:
        if len(cache) > 64:
            cache.clear()
        cache[(number, revoked)] = _signed_status_list(store, number, revoked, *signer)
    return _json(cache[(number, revoked)], media_type="application/vc+ld+json")


def _list_signer(request: Request, store: CredentialStore, number: int) -> tuple[str, SigningKey, str] | None:
    """(issuer, key, verification method) of a status list, None if there is no such list."""
    key = _keyring(request).current("Ed25519")
    if not vcapi_status.is_vcapi_list(number):
        return (
            (store.urls.did, key, store.urls.verification_method(key.kid))
            if store.has_status_list(number)
            else None
        )
    issuer = vcapi_status.list_issuer(store.session, number)
    if issuer == store.urls.did:
        return issuer, key, store.urls.verification_method(key.kid)
    for candidate in _keyring(request).keys:
        if candidate.algorithm == "Ed25519" and issuer == f"did:key:{candidate.public_multibase()}":
            return issuer, candidate, vcapi.did_key_method(candidate)
    return None


def _signed_status_list(
    store: CredentialStore, number: int, revoked: tuple[int, ...], issuer: str, key: SigningKey, method: str
) -> dict[str, Any]:
    now = iso(datetime.now(UTC))
    unsigned = statuslist.list_credential(store.urls.status_list(number), issuer, now, revoked)
    return dataintegrity.sign(unsigned, key, method, now)
