"""The VC-API (W3C Credentials Community Group) on the backpack: `POST /credentials/verify` for anyone
(rate-limited, as the verification pages are) and `POST /credentials/issue` for a client holding
EBACKPACK_VCAPI_ISSUE_TOKEN (the endpoint does not exist without it: it signs whatever it is given).
The checks are in ebackpack/domain/credentials/vcapi.py; docs/wallets.md says what is answered.
"""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ebackpack.domain.credentials import statuslist, vcapi
from ebackpack.domain.credentials.facts import iso

from . import vcapi_status
from .deps import DbSession, platform

router = APIRouter(tags=["VC-API"])
VERIFY, ISSUE = "/credentials/verify", "/credentials/issue"
VERIFY_PRESENTATION = "/presentations/verify"
STATUS = "/credentials/status"


async def _body(request: Request) -> dict[str, Any] | JSONResponse:
    """The JSON object posted (the body is bounded before it is read: bodies.BodyGuard)."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        return JSONResponse({"errors": ["the body is not JSON"]}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"errors": ["the body is not a JSON object"]}, status_code=400)
    return body


@router.post(VERIFY, summary="Verify a W3C Verifiable Credential (data model, proof, validity, status)")
async def verify_credential(request: Request, session: DbSession) -> JSONResponse:
    """200 with `verified: true` and the checks made, or 400 with `verified: false` and the errors;
    status lists that are not ours are not fetched (a warning says so)."""
    body = await _body(request)
    if isinstance(body, JSONResponse):
        return body
    our_key, status = lookups(request, session)
    # canonicalization and the status lists' rows: in a worker thread, not on the event loop
    result = await run_in_threadpool(
        vcapi.verify, body.get("verifiableCredential"), our_key, status, datetime.now(UTC)
    )
    return JSONResponse(result.as_json(), status_code=200 if result.verified else 400)


@router.post(VERIFY_PRESENTATION, summary="Verify a W3C Verifiable Presentation and what it holds")
async def verify_presentation(request: Request, session: DbSession) -> JSONResponse:
    """`options.challenge` and `options.domain`, when given, must be in the presentation's proof."""
    body = await _body(request)
    if isinstance(body, JSONResponse):
        return body
    options = body.get("options")
    challenge, domain = (
        (options.get("challenge"), options.get("domain")) if isinstance(options, dict) else (None, None)
    )
    our_key, status = lookups(request, session)
    result = await run_in_threadpool(
        vcapi.verify_presentation,
        body.get("verifiablePresentation"),
        our_key,
        status,
        datetime.now(UTC),
        challenge,
        domain,
    )
    return JSONResponse(result.as_json(), status_code=200 if result.verified else 400)


def lookups(request: Request, session: Session) -> tuple[vcapi.KeyLookup, vcapi.StatusLookup]:
    """Our own keys (did:web) and status lists (the awards' and the VC-API's), for a verification."""
    built = platform(request)
    store = built.credential_store(session)
    ring, urls = built.keys, built.urls

    def our_key(method: str) -> ed25519.Ed25519PublicKey | None:
        if not method.startswith(urls.did + "#"):
            return None
        key = ring.find(method.removeprefix(urls.did + "#"))
        public = key.private_key.public_key() if key else None
        return public if isinstance(public, ed25519.Ed25519PublicKey) else None

    def status(url: str, index: int, purpose: str) -> bool | None:
        prefix = urls.status_list("")
        number = url.removeprefix(prefix)
        if not url.startswith(prefix) or not number.isdigit() or purpose != statuslist.PURPOSE:
            return None
        revoked = vcapi_status.revoked_on(store, int(number))
        return None if revoked is None else index in revoked

    return our_key, status


@router.post(ISSUE, summary="Sign a credential (only with EBACKPACK_VCAPI_ISSUE_TOKEN)", status_code=201)
async def issue_credential(request: Request, session: DbSession) -> JSONResponse:
    """The bearer token is checked before the body is read. The credential's issuer must be our did:web
    or our signing key's did:key; it is signed with an eddsa-rdfc-2022 proof by that key.
    `options.credentialStatus: {"type": "BitstringStatusListEntry"}` adds a revocation entry on one of
    the VC-API's status lists (vcapi_status.py)."""
    body = await _issuers_body(request)
    if isinstance(body, JSONResponse):
        return body
    return await run_in_threadpool(_issue, request, session, body)


def _issue(request: Request, session: Session, body: dict[str, Any]) -> JSONResponse:
    """In a worker thread: canonicalization, signing and the status entry's row."""
    built = platform(request)
    key = built.keys.current("Ed25519")
    methods = {built.urls.did: built.urls.verification_method(key.kid)}
    did_key = vcapi.did_key_method(key)
    methods[did_key.split("#")[0]] = did_key
    options = body.get("options")
    asked = options.get("credentialStatus") if isinstance(options, dict) else None
    now = datetime.now(UTC)
    if asked is not None and (
        not isinstance(asked, dict)
        or asked.get("type") != vcapi.STATUS_ENTRY
        or asked.get("statusPurpose", statuslist.PURPOSE) != statuslist.PURPOSE
    ):
        problem = f"options.credentialStatus: only {{'type': '{vcapi.STATUS_ENTRY}'}} for revocation"
        return JSONResponse({"errors": [problem]}, status_code=400)
    credential = body.get("credential")
    credential_id = credential.get("id") if isinstance(credential, dict) else None

    def status_entry(issuer: str) -> dict[str, str]:
        number, index = vcapi_status.allocate(session, issuer, str(credential_id or "") or None, now)
        return statuslist.entry(built.urls.status_list(number), index)

    try:
        signed = vcapi.issue(credential, methods, key, iso(now), status_entry if asked else None)
    except vcapi.InvalidCredential as exc:
        session.rollback()
        return JSONResponse({"errors": exc.problems}, status_code=400)
    session.commit()
    return JSONResponse({"verifiableCredential": signed}, status_code=201)


@router.post(STATUS, summary="Revoke a credential signed here (only with EBACKPACK_VCAPI_ISSUE_TOKEN)")
async def update_status(request: Request, session: DbSession) -> JSONResponse:
    """VC-API's status update: `{"credentialId": …, "credentialStatus": [{"type":
    "BitstringStatusListEntry", "status": "revoked"}]}` sets the credential's bit on its list; the
    status list shows it at once. A revocation is final: there is no way back."""
    body = await _issuers_body(request)
    if isinstance(body, JSONResponse):
        return body
    credential_id, changes = body.get("credentialId"), body.get("credentialStatus")
    wanted = changes if isinstance(changes, list) else [changes]
    if (
        not isinstance(credential_id, str)
        or not credential_id
        or not all(
            isinstance(c, dict) and c.get("type") == vcapi.STATUS_ENTRY and c.get("status") == "revoked"
            for c in wanted
        )
    ):
        problem = (
            'send {"credentialId": "...", "credentialStatus": '
            f'[{{"type": "{vcapi.STATUS_ENTRY}", "status": "revoked"}}]}}'
        )
        return JSONResponse({"errors": [problem]}, status_code=400)
    return await run_in_threadpool(_revoke, session, credential_id)


def _revoke(session: Session, credential_id: str) -> JSONResponse:
    if not vcapi_status.revoke(session, credential_id, datetime.now(UTC)):
        return JSONResponse(
            {"errors": [f"no credential {credential_id} with a status entry was signed here"]},
            status_code=404,
        )
    session.commit()
    return JSONResponse({"credentialId": credential_id, "status": "revoked"})


async def _issuers_body(request: Request) -> dict[str, Any] | JSONResponse:
    """The JSON object an issuing client posted, or the refusal: the token is checked first."""
    refused = _issuer_refusal(request)
    return refused if refused is not None else await _body(request)


def _issuer_refusal(request: Request) -> JSONResponse | None:
    """404 while the token is not configured (the endpoints do not exist), 401 without the token; checked
    before the body is read."""
    settings = request.app.state.settings
    if settings.vcapi_issue_token is None:
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    expected = settings.vcapi_issue_token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        return JSONResponse(
            {"errors": ["a bearer token is required"]},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return None
