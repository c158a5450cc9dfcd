"""The learner's pages: certificates, digital badges, external attestations, public links; login and
the language switch. Server-rendered; every state change is a POST form with a CSRF token."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from fastapi import APIRouter, Form, HTTPException, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from ebackpack.adapters.credential_exports import FORMATS
from ebackpack.adapters.portability import LearnerArchive, NoSuchLearner

from .deps import DbSession, attestation_uploads, backpack_views, credential_store, platform
from .i18n import LANG_COOKIE, LANGUAGES
from .session import CsrfChecked, PageLearner, User, local_path, sign_in, sign_out, signed_in
from .shares import DURATIONS_DAYS, Shares
from .uploads import AttestationUploads, UploadRefused
from .views import CredentialView
from .wallets import copies_of
from .web import download, flash, render, spooled_download

router = APIRouter(include_in_schema=False)
YEAR = 365 * 24 * 3600
DOWNLOADS = {
    "ob2-png": "Badge image with the credential inside (PNG)",
    "ob2-svg": "Badge image with the credential inside (SVG)",
    "ob3": "Open Badges 3.0 credential (JSON)",
    "ob3-jwt": "Open Badges 3.0 credential (JWT)",
}


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


# ----------------------------------------------------------------------------------- login, language


@router.get("/")
def home(request: Request) -> RedirectResponse:
    user = signed_in(request)
    if user is None:
        return see_other("/login")
    return see_other("/certificates" if user.learner_id is not None else "/admin")


@router.get("/login")
def login_page(request: Request, session: DbSession, next: str = "/") -> Response:
    settings = request.app.state.settings
    learners = backpack_views(request, session).learner_names() if settings.dev_login_enabled else []
    return render(
        request,
        "login.html",
        next=local_path(next),
        learners=learners,
        oidc=bool(settings.oidc_issuer),
        lti=bool(settings.lti_issuer),
    )


@router.post("/login/dev", dependencies=[CsrfChecked])
def dev_login(
    request: Request, session: DbSession, account: Annotated[str, Form()], next: Annotated[str, Form()] = "/"
) -> Response:
    if not request.app.state.settings.dev_login_enabled:
        raise HTTPException(404, "the development login is off")
    if account == "admin":
        sign_in(request, User(learner_id=None, role="admin", name="Administrator", via="development login"))
    else:
        names = dict(backpack_views(request, session).learner_names())
        learner = int(account) if account.isdigit() else -1
        if learner not in names:
            raise HTTPException(404, "no such learner")
        sign_in(
            request, User(learner_id=learner, role="learner", name=names[learner], via="development login")
        )
    return see_other(local_path(next) if next != "/" else "/")


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request) -> Response:
    sign_out(request)
    return see_other("/login")


@router.post("/language", dependencies=[CsrfChecked])
def choose_language(
    request: Request, lang: Annotated[str, Form()], next: Annotated[str, Form()] = "/"
) -> Response:
    if lang not in LANGUAGES:
        raise HTTPException(400, "Polish (pl) or English (en)")
    request.session["lang"] = lang
    response = see_other(local_path(next))
    response.set_cookie(
        LANG_COOKIE,
        lang,
        max_age=YEAR,
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.public_url.startswith("https://"),
    )
    return response


# ------------------------------------------------------------------------------------- certificates


def _own(request: Request, session: Session, user: User, code: str) -> CredentialView:
    view = backpack_views(request, session).credential(user.learner_id, code)
    if view is None:
        raise HTTPException(404, "no such credential in your backpack")
    return view


def qr_svg(url: str) -> str:
    """The verification link as an SVG QR code (data URI), error correction M, with its quiet zone."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        border=4,
        image_factory=qrcode.image.svg.SvgPathImage,
    )
    code.add_data(url)
    buffer = io.BytesIO()
    code.make_image().save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


@router.get("/certificates")
def certificates(request: Request, session: DbSession, user: PageLearner) -> Response:
    assert user.learner_id is not None
    items = [v for v in backpack_views(request, session).credentials(user.learner_id) if v.has_certificate]
    return render(request, "certificates.html", items=items)


@router.get("/certificates/{code}")
def certificate(request: Request, session: DbSession, user: PageLearner, code: str) -> Response:
    view = _own(request, session, user, code)
    verify_url = request.app.state.settings.verify_url(view.code)
    return render(
        request,
        "certificate.html",
        c=view,
        verify_url=verify_url,
        qr=qr_svg(verify_url),
        wallet_copies=copies_of(session, view.award.learner_id, view.award.credential_id),
    )


# ------------------------------------------------------------------------------------------- badges


@router.get("/badges")
def badges(request: Request, session: DbSession, user: PageLearner) -> Response:
    assert user.learner_id is not None
    items = [v for v in backpack_views(request, session).credentials(user.learner_id) if v.has_badge]
    urls = platform(request).urls
    return render(request, "badges.html", items=items, image=lambda v: urls.badge_image(v.award.rule_id))


def linkedin_url(view: CredentialView, organization: str, verify_url: str) -> str:
    """LinkedIn's "Add licence or certification" form, filled in with this credential."""
    params = {
        "startTask": "CERTIFICATION_NAME",
        "name": view.award.achievement_name,
        "organizationName": organization,
        "issueYear": view.issued_on.year,
        "issueMonth": view.issued_on.month,
        "certUrl": verify_url,
        "certId": view.code,
    }
    if view.valid_until:
        params |= {"expirationYear": view.valid_until.year, "expirationMonth": view.valid_until.month}
    return "https://www.linkedin.com/profile/add?" + urlencode(params)


@router.get("/badges/{code}")
def badge(request: Request, session: DbSession, user: PageLearner, code: str) -> Response:
    assert user.learner_id is not None
    view = _own(request, session, user, code)
    settings, rules = request.app.state.settings, request.app.state.rules
    urls = platform(request).urls
    verify_url = settings.verify_url(view.code)
    return render(
        request,
        "badge.html",
        c=view,
        image=urls.badge_image(view.award.rule_id),
        assertion_url=urls.ob2_assertion(view.code),
        verify_url=verify_url,
        downloads=DOWNLOADS,
        linkedin=linkedin_url(view, rules.issuer.name, verify_url),
        issuer=rules.issuer,
        shares=Shares(session).of_credential(user.learner_id, view.award.credential_id),
        durations=DURATIONS_DAYS,
        now=datetime.now(UTC),
        share_base=f"{urls.base}/s/",
        wallet_copies=copies_of(session, user.learner_id, view.award.credential_id),
    )


@router.get("/badges/{code}/download/{fmt}")
def badge_download(request: Request, session: DbSession, user: PageLearner, code: str, fmt: str) -> Response:
    view = _own(request, session, user, code)
    if fmt not in FORMATS:
        raise HTTPException(404, "no such format")
    return download(credential_store(request, session), view.award, fmt)


@router.post("/badges/{code}/shares", dependencies=[CsrfChecked])
def create_share(
    request: Request, session: DbSession, user: PageLearner, code: str, days: Annotated[int, Form()]
) -> Response:
    assert user.learner_id is not None
    view = _own(request, session, user, code)
    try:
        Shares(session).create(user.learner_id, view.award.credential_id, days)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    session.commit()
    return see_other(f"/badges/{view.code}#links")


@router.post("/shares/{token}/withdraw", dependencies=[CsrfChecked])
def withdraw_share(
    request: Request,
    session: DbSession,
    user: PageLearner,
    token: str,
    back: Annotated[str, Form()] = "/badges",
) -> Response:
    assert user.learner_id is not None
    if not Shares(session).withdraw(user.learner_id, token):
        raise HTTPException(404, "no such link in your backpack")
    session.commit()
    return see_other(local_path(back))


@router.get("/s/{token}")
def shared(request: Request, session: DbSession, token: str) -> Response:
    """A public link: the credential as its learner chose to show it, while the link lasts."""
    share = Shares(session).find(token)
    if share is None:
        raise HTTPException(404, "no such link")
    state = share.state(datetime.now(UTC))
    if state != "active":
        return render(request, "shared.html", 410, state=state, c=None)
    view = backpack_views(request, session).by_id(share.credential_id)
    if view is None:
        raise HTTPException(404, "no such link")
    return render(
        request,
        "shared.html",
        state=state,
        c=view,
        issuer=request.app.state.rules.issuer,
        verify_url=request.app.state.settings.verify_url(view.code),
        share=share,
    )


# ------------------------------------------------------------------------------- external attestations


@router.get("/attestations")
def attestations(request: Request, user: PageLearner) -> Response:
    assert user.learner_id is not None
    uploads = attestation_uploads(request)
    return render(
        request,
        "attestations.html",
        items=uploads.list(user.learner_id),
        limit_mb=uploads.settings.import_max_upload_bytes // (1024 * 1024),
    )


@router.post("/attestations", dependencies=[CsrfChecked])
async def upload(request: Request, user: PageLearner, file: UploadFile) -> Response:
    assert user.learner_id is not None
    uploads = attestation_uploads(request)
    data = await file.read(uploads.settings.import_max_upload_bytes + 1)
    try:
        received = uploads.receive_file(user.learner_id, data, file.filename)
    except UploadRefused as exc:
        flash(request, "Not imported: {reason}", reason=str(exc))
        return see_other("/attestations")
    flash(request, "The file was received and is being checked.")
    return see_other(f"/attestations/{received.row['id']}")


@router.post("/attestations/links", dependencies=[CsrfChecked])
def submit_link(request: Request, user: PageLearner, url: Annotated[str, Form()]) -> Response:
    assert user.learner_id is not None
    try:
        received = attestation_uploads(request).receive_url(user.learner_id, url)
    except UploadRefused as exc:
        flash(request, "Not imported: {reason}", reason=str(exc))
        return see_other("/attestations")
    flash(request, "The file was received and is being checked.")
    return see_other(f"/attestations/{received.row['id']}")


def _attestation(request: Request, user: User, attestation_id: str) -> dict[str, object]:
    assert user.learner_id is not None
    try:
        return attestation_uploads(request).get(user.learner_id, attestation_id)
    except UploadRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None


@router.get("/attestations/{attestation_id}")
def attestation(request: Request, user: PageLearner, attestation_id: str) -> Response:
    return render(request, "attestation.html", a=_attestation(request, user, attestation_id))


@router.post("/attestations/{attestation_id}/recheck", dependencies=[CsrfChecked])
def recheck(request: Request, user: PageLearner, attestation_id: str) -> Response:
    uploads, learner_id = _own_attestation(request, user, attestation_id)
    uploads.recheck(learner_id, attestation_id)
    flash(request, "A new check was requested.")
    return see_other(f"/attestations/{attestation_id}")


@router.post("/attestations/{attestation_id}/delete", dependencies=[CsrfChecked])
def delete(request: Request, user: PageLearner, attestation_id: str) -> Response:
    uploads, learner_id = _own_attestation(request, user, attestation_id)
    uploads.delete(learner_id, attestation_id)
    flash(request, "Deleted.")
    return see_other("/attestations")


def _own_attestation(request: Request, user: User, attestation_id: str) -> tuple[AttestationUploads, int]:
    """The uploads and the learner, once the attestation is shown to be theirs (404 otherwise)."""
    assert user.learner_id is not None
    _attestation(request, user, attestation_id)
    return attestation_uploads(request), user.learner_id


# ----------------------------------------------------------------------------------- portability


@router.get("/export.zip")
def export_everything(request: Request, session: DbSession, user: PageLearner) -> Response:
    """Everything the learner owns (ebackpack/adapters/portability.py), built into a temporary file one
    member at a time, then streamed with its length (the browser shows the download's progress)."""
    learner_id = user.learner_id
    assert learner_id is not None
    built = platform(request)
    archive = LearnerArchive(built.credential_store(session), built.objects)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    try:
        return spooled_download(
            lambda target: archive.write(learner_id, target),
            {
                "Content-Disposition": f'attachment; filename="e-backpack-{day}.zip"',
                "Cache-Control": "no-store",
            },
        )
    except NoSuchLearner:
        raise HTTPException(404, "no such learner") from None
