"""Administration pages: courses and their credentials, revocation with a reason, re-render, bulk ZIP.

Revocation and re-render go through the issuer's service layer, so they are saved with their outbox
events in one transaction; the running issuer announces them."""

from __future__ import annotations

import tempfile
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from ebackpack.adapters.certificate_reads import course_entries, write_zip
from ebackpack.adapters.storage import ObjectStore
from services.issuer.service import IssuerService

from .deps import DbSession, backpack_views
from .session import AdminUser, CsrfChecked, local_path
from .web import flash, render

router = APIRouter(prefix="/admin", include_in_schema=False)
ZIP_CHUNK = 256 * 1024


def _issuer(request: Request) -> IssuerService:
    service: IssuerService = request.app.state.issuer
    return service


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
    _admin: AdminUser,
    code: str,
    reason: Annotated[str, Form()],
    back: Annotated[str, Form()] = "/admin",
) -> Response:
    if not reason.strip():
        flash(request, "A reason is required: it is shown to everyone who checks the credential.")
    else:
        try:
            award = _issuer(request).revoke(code, reason.strip())
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
        flash(request, "{code} was revoked.", code=award.verification_code)
    # RedirectResponse percent-encodes the path: a raw non-Latin-1 character cannot go in a header.
    return RedirectResponse(back if local_path(back).startswith("/admin") else "/admin", status_code=303)


@router.post("/courses/{course_id}/rerender", dependencies=[CsrfChecked])
def rerender(request: Request, _admin: AdminUser, course_id: int) -> Response:
    queued = _issuer(request).rerender(course_id=course_id)
    flash(request, "{n} certificates will be rendered again.", n=queued)
    return Response(status_code=303, headers={"Location": f"/admin/courses/{course_id}"})


@router.get("/courses/{course_id}/certificates.zip")
def course_zip(request: Request, session: DbSession, _admin: AdminUser, course_id: int) -> Response:
    """Built into a temporary file from S3 one PDF at a time, then streamed: memory holds one chunk."""
    entries = course_entries(session, course_id)
    if not entries:
        raise HTTPException(404, "this course has no stored certificates")
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the response when it has been sent)
    write_zip(ObjectStore(request.app.state.settings), entries, spool)
    spool.seek(0)
    return StreamingResponse(
        iter(lambda: spool.read(ZIP_CHUNK), b""),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="course-{course_id}.zip"'},
        background=BackgroundTask(spool.close),
    )
