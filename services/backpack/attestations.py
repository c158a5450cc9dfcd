"""The learner's external attestations, as a JSON API: upload a file or a link, list, read, re-check,
download the original, delete. Every route answers only for the authenticated learner's own items."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from .deps import attestation_uploads
from .session import ApiLearner
from .uploads import Received, UploadRefused
from .web import attachment

router = APIRouter(prefix="/api/attestations", tags=["external attestations"])
READ_CHUNK = 256 * 1024


def _refused(exc: UploadRefused) -> HTTPException:
    return HTTPException(exc.status, str(exc))


def _accepted(received: Received) -> JSONResponse:
    body = received.row | {"announced": received.announced}
    return JSONResponse(
        body, status_code=202, headers={"Location": f"/api/attestations/{received.row['id']}"}
    )


async def _read_capped(file: UploadFile, limit: int) -> bytes:
    """Reads at most limit + 1 bytes: enough to tell that a file is too large without keeping it all."""
    data = bytearray()
    while chunk := await file.read(READ_CHUNK):
        data += chunk
        if len(data) > limit:
            break
    return bytes(data)


@router.post("", status_code=202, summary="Upload a credential file (multipart field `file`)")
async def upload_file(request: Request, learner: ApiLearner, file: UploadFile) -> JSONResponse:
    """The body is bounded while it streams, and the sender checked before it is read (bodies.py)."""
    uploads = attestation_uploads(request)
    data = await _read_capped(file, uploads.settings.import_max_upload_bytes)
    try:
        return _accepted(uploads.receive_file(learner, data, file.filename))
    except UploadRefused as exc:
        raise _refused(exc) from None


@router.post("/links", status_code=202, summary="Submit a link (hosted Open Badge, verification page)")
def submit_link(request: Request, learner: ApiLearner, url: Annotated[str, Body(embed=True)]) -> JSONResponse:
    try:
        return _accepted(attestation_uploads(request).receive_url(learner, url))
    except UploadRefused as exc:
        raise _refused(exc) from None


@router.get("", summary="The learner's attestations, newest first")
def list_attestations(request: Request, learner: ApiLearner) -> list[dict[str, Any]]:
    return attestation_uploads(request).list(learner)


@router.get("/{attestation_id}", summary="One attestation: state, normalized record, verification")
def get_attestation(request: Request, learner: ApiLearner, attestation_id: str) -> dict[str, Any]:
    try:
        return attestation_uploads(request).get(learner, attestation_id)
    except UploadRefused as exc:
        raise _refused(exc) from None


@router.get("/{attestation_id}/original", summary="Download the file as uploaded")
def original(request: Request, learner: ApiLearner, attestation_id: str) -> Response:
    try:
        data, media_type, filename = attestation_uploads(request).original(learner, attestation_id)
    except UploadRefused as exc:
        raise _refused(exc) from None
    # Always a download, never rendered in our origin: an uploaded SVG or HTML-ish file cannot run here.
    return Response(
        data,
        media_type=media_type,
        headers={
            "Content-Disposition": attachment(filename or attestation_id),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


@router.post("/{attestation_id}/recheck", status_code=202, summary="Verify again now")
def recheck(request: Request, learner: ApiLearner, attestation_id: str) -> dict[str, Any]:
    try:
        announced = attestation_uploads(request).recheck(learner, attestation_id)
    except UploadRefused as exc:
        raise _refused(exc) from None
    return {"id": attestation_id, "announced": announced}


@router.delete("/{attestation_id}", status_code=204, summary="Delete the attestation and its file")
def delete(request: Request, learner: ApiLearner, attestation_id: str) -> Response:
    try:
        attestation_uploads(request).delete(learner, attestation_id)
    except UploadRefused as exc:
        raise _refused(exc) from None
    return Response(status_code=204)
