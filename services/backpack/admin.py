"""Administration pages: courses and their credentials, revocation with a reason, re-render, bulk ZIP.

Revocation and re-render are commands for the issuer (`credentials.commands`): the issuer alone writes
awards, saving each change with its outbox event. After publishing a revocation the page waits a few
seconds for it to show in the database and says whether it did or is still on its way."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.certificate_reads import course_entries, write_zip
from ebackpack.adapters.credential_store import award_by_code
from ebackpack.bootstrap import Platform

from .commands import AdminCommands, CommandNotSent
from .deps import DbSession, backpack_views
from .session import AdminUser, CsrfChecked, local_path
from .web import flash, render, spooled_download

router = APIRouter(prefix="/admin", include_in_schema=False)
REVOCATION_WAIT = 4.0  # seconds the page waits for the issuer to carry out a revocation
POLL_INTERVAL = 0.2
NOT_SENT = "The message broker did not answer, so nothing was {what}. Try again in a moment."


def _commands(request: Request) -> AdminCommands:
    commands: AdminCommands = request.app.state.commands
    return commands


def _revoked_within(sessions: sessionmaker[Session], code: str, seconds: float) -> bool:
    """True once the award shows as revoked (the issuer committed it), False when `seconds` pass first."""
    deadline = time.monotonic() + seconds
    while True:
        with sessions() as session:
            award = award_by_code(session, code)
            if award is not None and award.status == "revoked":
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)


@router.get("")
def courses(request: Request, session: DbSession, _admin: AdminUser) -> Response:
    views = backpack_views(request, session)
    return render(request, "admin_courses.html", courses=views.courses())


@router.get("/courses/{course_id}")
def course(request: Request, session: DbSession, _admin: AdminUser, course_id: int) -> Response:
    views = backpack_views(request, session)
    name = views.course_name(course_id)
    items = views.course_credentials(course_id)
    if name is None and not items:
        raise HTTPException(404, "no such course")
    return render(
        request, "admin_course.html", course_id=course_id, name=name or f"#{course_id}", items=items
    )


@router.post("/credentials/{code}/revoke", dependencies=[CsrfChecked])
def revoke(
    request: Request,
    session: DbSession,
    admin: AdminUser,
    code: str,
    reason: Annotated[str, Form()],
    back: Annotated[str, Form()] = "/admin",
) -> Response:
    if reason.strip():
        _request_revocation(request, session, code, reason.strip(), admin.name)
    else:
        flash(request, "A reason is required: it is shown to everyone who checks the credential.")
    # RedirectResponse percent-encodes the path: a raw non-Latin-1 character cannot go in a header.
    return RedirectResponse(back if local_path(back).startswith("/admin") else "/admin", status_code=303)


def _request_revocation(request: Request, session: Session, code: str, reason: str, admin: str) -> None:
    """Publishes the command, then waits a few seconds for the issuer to carry it out."""
    award = award_by_code(session, code)
    if award is None:
        raise HTTPException(404, f"no credential with code or id {code!r}")
    if award.status == "revoked":  # nothing to ask: the first reason stands
        flash(request, "{code} was revoked.", code=award.verification_code)
        return
    credential_id, code = award.credential_id, award.verification_code
    session.close()  # the wait below reads afresh, in sessions of its own
    try:
        _commands(request).request_revocation(credential_id, code, reason, admin)
    except CommandNotSent:
        raise HTTPException(503, NOT_SENT.format(what="revoked")) from None
    platform: Platform = request.app.state.platform
    if _revoked_within(platform.sessions, code, REVOCATION_WAIT):
        flash(request, "{code} was revoked.", code=code)
    else:
        flash(request, "Revocation of {code} requested; it takes effect within seconds.", code=code)


@router.post("/courses/{course_id}/rerender", dependencies=[CsrfChecked])
def rerender(request: Request, session: DbSession, admin: AdminUser, course_id: int) -> Response:
    count = backpack_views(request, session).certificates_to_rerender(course_id)
    try:
        _commands(request).request_rerender(course_id, admin.name)
    except CommandNotSent:
        raise HTTPException(503, NOT_SENT.format(what="rendered again")) from None
    flash(request, "{n} certificates will be rendered again.", n=count)
    return Response(status_code=303, headers={"Location": f"/admin/courses/{course_id}"})


@router.get("/courses/{course_id}/certificates.zip")
def course_zip(request: Request, session: DbSession, _admin: AdminUser, course_id: int) -> Response:
    """Built into a temporary file from S3 one PDF at a time, then streamed: memory holds one chunk."""
    entries = course_entries(session, course_id)
    if not entries:
        raise HTTPException(404, "this course has no stored certificates")
    return spooled_download(
        lambda target: write_zip(request.app.state.platform.objects, entries, target),
        {"Content-Disposition": f'attachment; filename="course-{course_id}.zip"'},
    )
