"""OpenID for Verifiable Credential Issuance 1.0 endpoints (pre-authorized code flow), and the learner's
"Add to a wallet" on a badge or certificate page. The protocol is in ebackpack/domain/credentials/
openid4vci.py, the offers and copies in wallets.py; docs/wallets.md says what a wallet sees.

The wallet's requests carry no cookie (public_pages.session_free): the offer's code, the transaction
code and the access token are the authority. Error bodies are OAuth's `{"error", "error_description"}`.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ebackpack.adapters.persistence.tables import WalletOfferRow
from ebackpack.domain.credentials import openid4vci as oid4vci
from ebackpack.domain.credentials.openid4vci import IssuerDisplay, Openid4vciError

from .deps import DbSession, backpack_views, platform
from .i18n import translate
from .pages import _own, qr_svg
from .session import AdminUser, CsrfChecked, PageLearner, local_path
from .views import CredentialView
from .wallets import OfferRefused, Wallets
from .web import render

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
LOCALES = ("pl", "en")
CLAIMS = [
    (["credentialSubject", "achievement", "name"], "Achievement"),
    (["credentialSubject", "achievement", "description"], "Description"),
    (["issuer", "name"], "Issued by"),
    (["validFrom"], "Issued on"),
    (["validUntil"], "Valid until"),
]


def _display(request: Request) -> IssuerDisplay:
    name = request.app.state.rules.issuer.name
    return IssuerDisplay(
        issuer_name=name,
        credential_name={lang: translate("Open Badge", lang) for lang in LOCALES},
        credential_description={
            lang: translate("A digital badge issued by {issuer}", lang, issuer=name) for lang in LOCALES
        },
        claims=[(path, {lang: translate(label, lang) for lang in LOCALES}) for path, label in CLAIMS],
    )


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={**NO_STORE, **(headers or {})})


def _error(exc: Openid4vciError, status: int = 400) -> JSONResponse:
    return _json({"error": exc.error, "error_description": exc.description}, status)


# --------------------------------------------------------------------------------------- metadata


@router.get("/.well-known/openid-credential-issuer")
def issuer_metadata(request: Request) -> JSONResponse:
    public_url = request.app.state.settings.public_url
    return JSONResponse(oid4vci.issuer_metadata(public_url, _display(request)))


@router.get("/.well-known/oauth-authorization-server")
def authorization_server_metadata(request: Request) -> JSONResponse:
    return JSONResponse(oid4vci.authorization_server_metadata(request.app.state.settings.public_url))


# ------------------------------------------------------------------------------------ the protocol


@router.post(oid4vci.PATHS["token"])
async def token(request: Request, session: DbSession) -> JSONResponse:
    """Form-encoded (RFC 6749 sec. 4.1.3); extra fields a wallet sends (`resource`, `user_pin`) are
    ignored."""
    try:
        form = await request.form(max_files=0, max_fields=20)
    except Exception:
        return _error(Openid4vciError("invalid_request", "the body is not a form"))
    if form.get("grant_type") != oid4vci.PRE_AUTHORIZED_GRANT:
        return _error(Openid4vciError("unsupported_grant_type", f"only {oid4vci.PRE_AUTHORIZED_GRANT}"))
    code, tx_code = form.get("pre-authorized_code"), form.get("tx_code")
    if not isinstance(code, str) or not code or not isinstance(tx_code, str | None):
        return _error(Openid4vciError("invalid_request", "pre-authorized_code is missing"))
    # the database in a worker thread, not on the event loop
    return await run_in_threadpool(_redeem, Wallets(session, platform(request)), code, tx_code)


def _redeem(wallets: Wallets, code: str, tx_code: str | None) -> JSONResponse:
    try:
        granted = wallets.redeem(code, tx_code)
    except Openid4vciError as exc:
        wallets.session.commit()  # a wrong transaction code counts
        return _error(exc)
    wallets.session.commit()
    return _json(
        {"access_token": granted.access_token, "token_type": "Bearer", "expires_in": granted.expires_in}
    )


@router.post(oid4vci.PATHS["nonce"])
def nonce(request: Request) -> JSONResponse:
    return _json({"c_nonce": _nonces(request).issue(time.time())})


def _nonces(request: Request) -> oid4vci.Nonces:
    return oid4vci.Nonces(platform(request).code_secret)


@router.post(oid4vci.PATHS["credential"])
async def credential(request: Request, session: DbSession) -> JSONResponse:
    """Bearer token first, then the body: a request without a valid token is refused unread."""
    wallets = Wallets(session, platform(request))
    scheme, _, access_token = request.headers.get("authorization", "").partition(" ")
    offer = (
        await run_in_threadpool(wallets.offer_of_token, access_token.strip())
        if scheme.lower() == "bearer"
        else None
    )
    if offer is None:
        return _json(
            {"error": "invalid_token", "error_description": "no valid access token"},
            401,
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    try:
        body = json.loads(await request.body())
    except ValueError:
        return _error(Openid4vciError("invalid_credential_request", "the body is not JSON"))
    if not isinstance(body, dict):
        return _error(Openid4vciError("invalid_credential_request", "the body is not a JSON object"))
    # the proof's signature, the credential's canonicalization and signing: in a worker thread
    return await run_in_threadpool(_issue, request, wallets, offer, body)


def _issue(request: Request, wallets: Wallets, offer: WalletOfferRow, body: dict[str, Any]) -> JSONResponse:
    try:
        holder = _holder(request, body)
        issued = wallets.issue(offer, body.get("credential_configuration_id"), holder)
    except Openid4vciError as exc:
        return _error(exc)
    wallets.session.commit()
    return _json({"credentials": [{"credential": issued}]})


def _holder(request: Request, body: dict[str, Any]) -> str:
    proofs = body.get("proofs")
    if "proof" in body and proofs is None:
        raise Openid4vciError("invalid_credential_request", "OpenID4VCI 1.0 sends `proofs`, not `proof`")
    if not isinstance(proofs, dict):
        raise Openid4vciError("invalid_proof", "a key proof of type jwt is required: proofs.jwt")
    jwts = proofs.get("jwt")
    if not isinstance(jwts, list) or not jwts:
        raise Openid4vciError("invalid_proof", "a key proof of type jwt is required: proofs.jwt")
    if len(jwts) != 1 or len(proofs) != 1:
        raise Openid4vciError("invalid_proof", "one key proof of type jwt, one credential per request")
    nonces, now = _nonces(request), time.time()
    public_url = request.app.state.settings.public_url
    return oid4vci.holder_of_proof(jwts[0], public_url, lambda value: nonces.fresh(value, now), now)


# ------------------------------------------------------------------------ the learner's offer page


@router.post("/badges/{code}/wallet", dependencies=[CsrfChecked])
def offer_badge(request: Request, session: DbSession, user: PageLearner, code: str) -> Response:
    view = _own(request, session, user, code)
    return _offer_page(request, session, view, user.learner_id, "learner", f"/badges/{view.code}")


@router.post("/certificates/{code}/wallet", dependencies=[CsrfChecked])
def offer_certificate(request: Request, session: DbSession, user: PageLearner, code: str) -> Response:
    view = _own(request, session, user, code)
    return _offer_page(request, session, view, user.learner_id, "learner", f"/certificates/{view.code}")


@router.post("/admin/credentials/{code}/wallet", dependencies=[CsrfChecked])
def offer_for_learner(
    request: Request,
    session: DbSession,
    _admin: AdminUser,
    code: str,
    back: Annotated[str, Form()] = "/admin",
) -> Response:
    """An administrator's offer for a learner (to send them): protected by a transaction code, which
    the page shows and the learner's wallet asks for."""
    view = backpack_views(request, session).credential(None, code)
    if view is None:
        raise HTTPException(404, "no such credential")
    target = local_path(back)
    return _offer_page(
        request, session, view, None, "admin", target if target.startswith("/admin") else "/admin"
    )


def _offer_page(
    request: Request,
    session: DbSession,
    view: CredentialView,
    learner_id: int | None,
    created_by: str,
    back: str,
) -> Response:
    """A new offer of the credential, shown at once (its code is stored only hashed, so the page cannot
    be shown again: a reload makes a new offer). An administrator's has a transaction code."""
    try:
        made = Wallets(session, platform(request)).offer(
            view.award.credential_id,
            learner_id=learner_id,
            created_by=created_by,
            with_tx_code=created_by == "admin",
        )
    except OfferRefused as exc:
        raise HTTPException(409, str(exc)) from None
    session.commit()
    response = render(
        request,
        "wallet_offer.html",
        c=view,
        offer=made,
        qr=qr_svg(made.uri),
        minutes=round((made.expires_at - datetime.now(UTC)).total_seconds() / 60),
        back=back,
    )
    response.headers.update(NO_STORE)
    return response
