""" "Is this PDF genuine?": anyone can hand the verification page a PDF, and is told whether it is, byte
for byte, a certificate version we stored; if not, which of our certificates it claims to be (by the
signed credential attached inside it) and what we hold for that one; or that it is not one of ours.

Nothing uploaded is kept: the bytes are hashed and, when they match nothing, read with the bounded PDF
reader (`ebackpack.adapters.pdf_structure`) for the attached credential, whose signature and status are
checked as `/credentials/verify` checks one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ebackpack.adapters.certificate_reads import CertificateReads
from ebackpack.adapters.credential_store import status_of
from ebackpack.adapters.pdf_structure import PdfRefused, read_structure
from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow, Course, Learner
from ebackpack.domain.credentials import vcapi
from ebackpack.domain.credentials.facts import as_utc

from .deps import DbSession
from .vcapi import lookups
from .web import render

CREDENTIAL_FILE = "credential.json"  # the renderer's attachment (services/renderer/pages.py)
Verdict = Literal["genuine", "altered", "not_ours"]


@dataclass
class PdfCheck:
    verdict: Verdict
    reason: str = ""
    code: str | None = None
    version: int | None = None  # genuine: which stored version (1 = the first)
    versions: int | None = None
    current: bool | None = None  # genuine: whether it is the current version
    rendered_at: datetime | None = None
    status: str | None = None  # the credential's: valid, revoked, expired
    held: dict[str, str] = field(default_factory=dict)  # what we hold: learner, course, achievement, date
    attached: dict[str, Any] | None = None  # the attached credential's verification (vcapi)

    def as_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "verification_code": self.code,
            "version": self.version,
            "versions": self.versions,
            "current": self.current,
            "rendered_at": self.rendered_at.isoformat() if self.rendered_at else None,
            "status": self.status,
            "held": self.held,
            "attached_credential": self.attached,
        }


def check_pdf(
    data: bytes, session: Session, our_key: vcapi.KeyLookup, status: vcapi.StatusLookup
) -> PdfCheck:
    digest = hashlib.sha256(data).hexdigest()
    stored = session.scalars(select(CertificateRow).where(CertificateRow.sha256 == digest)).first()
    if stored is not None:
        return _genuine(session, stored)
    try:
        attachments = read_structure(data).attachments
    except PdfRefused as refused:
        return PdfCheck("not_ours", f"not a PDF we can read: {refused}")
    attached = _credential(attachments.get(CREDENTIAL_FILE))
    if attached is None:
        return PdfCheck("not_ours", "the file carries no credential of ours")
    award = session.get(AwardRow, str(attached.get("id", "")).removeprefix("urn:uuid:"))
    if award is None:
        return PdfCheck("not_ours", "the credential attached to the file is not one we issued")
    verification = vcapi.verify(attached, our_key, status, datetime.now(UTC))
    return PdfCheck(
        "altered",
        "the file differs from every version of this certificate we issued",
        code=award.verification_code,
        status=status_of(award, datetime.now(UTC)),
        held=_held(session, award),
        attached=verification.as_json(),
    )


def _genuine(session: Session, stored: CertificateRow) -> PdfCheck:
    award = session.get(AwardRow, stored.credential_id)
    assert award is not None, "a stored certificate belongs to an award"
    versions = CertificateReads(session).versions(stored.credential_id)  # the current one first
    oldest_first = list(reversed(versions))
    return PdfCheck(
        "genuine",
        "the file is, byte for byte, a certificate we issued",
        code=award.verification_code,
        version=1 + next(i for i, v in enumerate(oldest_first) if v.id == stored.id),
        versions=len(versions),
        current=versions[0].id == stored.id,
        rendered_at=as_utc(stored.rendered_at),
        status=status_of(award, datetime.now(UTC)),
        held=_held(session, award),
    )


def _credential(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        document = json.loads(data)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _held(session: Session, award: AwardRow) -> dict[str, str]:
    """What the verification page shows of the credential (no name once the learner is erased)."""
    learner = session.get(Learner, award.learner_id)
    course = session.get(Course, award.course_id)
    held = {
        "achievement": award.achievement_name,
        "course": course.fullname if course else "",
        "issued_on": award.issued_on.date().isoformat(),
    }
    if learner is not None:
        held["learner"] = f"{learner.firstname} {learner.lastname}"
    return held


# ---------------------------------------------------------------------------------------- the endpoint

router = APIRouter(tags=["verification"])


@router.post("/verify/check", summary="Is this PDF one of our certificates, unaltered? (nothing is kept)")
async def check_certificate_pdf(request: Request, session: DbSession) -> Response:
    """A multipart `file` (at most EBACKPACK_IMPORT_MAX_UPLOAD_BYTES, counted as it streams): JSON, or
    the answer page for a browser's form. See pdf_check.py."""
    form = await request.form(max_files=1, max_fields=2)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        return JSONResponse({"detail": "send the PDF as the multipart field `file`"}, status_code=400)
    data = await upload.read()
    our_key, status = lookups(request, session)
    # hashing, the PDF reader and the rows: in a worker thread, not on the event loop
    result = await run_in_threadpool(check_pdf, data, session, our_key, status)
    if "text/html" in request.headers.get("accept", "") and request.query_params.get("format") != "json":
        page = render(request, "pdf_check.html", r=result)
        page.headers["Cache-Control"] = "no-store"
        return page
    return JSONResponse(result.as_json(), headers={"Cache-Control": "no-store"})
