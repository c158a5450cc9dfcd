"""The JSON API of the learner's credentials and public links (the attestations have theirs in
attestations.py). Same data and rules as the pages: each learner reads and changes only their own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request
from sqlalchemy.orm import Session

from ebackpack.adapters.credential_exports import FORMATS

from .deps import DbSession, backpack_views, platform
from .session import ApiLearner
from .shares import DURATIONS_DAYS, Share, Shares
from .views import CredentialView

router = APIRouter(prefix="/api", tags=["credentials"])


def describe(request: Request, view: CredentialView) -> dict[str, Any]:
    settings = request.app.state.settings
    urls = platform(request).urls
    base = f"{settings.public_url.rstrip('/')}/badges/{view.code}/download"
    return {
        "code": view.code,
        "credential_id": view.award.credential_id,
        "achievement": view.award.achievement_name,
        "course": view.course_name,
        "status": view.status,
        "issued_on": view.issued_on.isoformat(),
        "valid_until": view.valid_until.isoformat() if view.valid_until else None,
        "revoked_on": view.revoked_on.isoformat() if view.revoked_on else None,
        "revocation_reason": view.award.revocation_reason,
        "badge": view.has_badge,
        "certificate": {
            "sha256": view.certificate.sha256,
            "pdf": f"{settings.verify_url(view.code)}/certificate.pdf",
        }
        if view.certificate
        else None,
        "verify_url": settings.verify_url(view.code),
        "ob2_assertion": urls.ob2_assertion(view.code),
        "downloads": {fmt: f"{base}/{fmt}" for fmt in FORMATS} if view.has_badge else {},
    }


def _share(request: Request, share: Share) -> dict[str, Any]:
    return {
        "token": share.token,
        "url": f"{request.app.state.settings.public_url.rstrip('/')}/s/{share.token}",
        "created_at": share.created_at.isoformat(),
        "expires_at": share.expires_at.isoformat(),
        "state": share.state(datetime.now(UTC)),
    }


def _own(request: Request, session: Session, learner: int, code: str) -> CredentialView:
    view = backpack_views(request, session).credential(learner, code)
    if view is None:
        raise HTTPException(404, "no such credential in your backpack")
    return view


@router.get("/credentials", summary="The learner's credentials (badges and certificates), newest first")
def credentials(request: Request, session: DbSession, learner: ApiLearner) -> list[dict[str, Any]]:
    return [describe(request, view) for view in backpack_views(request, session).credentials(learner)]


@router.get("/credentials/{code}", summary="One credential of the learner's")
def credential(request: Request, session: DbSession, learner: ApiLearner, code: str) -> dict[str, Any]:
    return describe(request, _own(request, session, learner, code))


@router.get("/credentials/{code}/shares", summary="The credential's public links")
def shares(request: Request, session: DbSession, learner: ApiLearner, code: str) -> list[dict[str, Any]]:
    view = _own(request, session, learner, code)
    return [_share(request, s) for s in Shares(session).of_credential(learner, view.award.credential_id)]


@router.post(
    "/credentials/{code}/shares", status_code=201, summary="Create a public link (7, 30 or 365 days)"
)
def create_share(
    request: Request,
    session: DbSession,
    learner: ApiLearner,
    code: str,
    days: Annotated[int, Body(embed=True)] = 30,
) -> dict[str, Any]:
    view = _own(request, session, learner, code)
    if days not in DURATIONS_DAYS:
        raise HTTPException(422, f"days must be one of {list(DURATIONS_DAYS)}")
    share = Shares(session).create(learner, view.award.credential_id, days)
    session.commit()
    return _share(request, share)


@router.post("/shares/{token}/withdraw", summary="Withdraw a public link")
def withdraw(request: Request, session: DbSession, learner: ApiLearner, token: str) -> dict[str, Any]:
    store = Shares(session)
    if not store.withdraw(learner, token):
        raise HTTPException(404, "no such link in your backpack")
    session.commit()
    share = store.find(token)
    assert share is not None
    return _share(request, share)
