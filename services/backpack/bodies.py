"""Request bodies, bounded while they stream; uploads refused before a byte of their body is read.

FastAPI parses a route's form (Starlette spools a multipart file to a temporary file past 1 MB) before
any dependency runs, so a route's own login and CSRF checks came after the whole body had been written
to disk, and a chunked body has no `Content-Length` to check first. This pure ASGI middleware runs
before the routes:

- an upload (`POST /api/attestations`, `POST /attestations`) first needs a learner (session or bearer
  token) and, with a session, the CSRF token in the `X-CSRF-Token` header or the `csrf_token` query
  parameter (the upload form puts it in its action URL): 401 / 303 to the login / 403 otherwise;
- an answer given before the whole body was read closes the connection (uvicorn would otherwise read
  and drop the rest of the body to keep the connection alive, however long it is);
- every body is counted as it arrives: past the limit (`import_max_upload_bytes` plus room for the
  multipart framing on upload routes, `BODY_LIMIT` elsewhere) the request is answered 413 and the
  connection closed; the bytes beyond the limit are never read, so never reach the disk. A declared
  `Content-Length` over the limit is refused before reading anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ebackpack.config import Settings

from .session import CSRF_FIELD, CSRF_HEADER, api_learner, check_csrf, login_url, signed_in

# POST: a file, multipart. "public": anyone (the verification page's PDF check: nothing is stored).
UPLOADS = {"/api/attestations": "api", "/attestations": "page", "/verify/check": "public"}
MULTIPART_OVERHEAD = 64 * 1024  # form boundaries, part headers and the CSRF field around the file
BODY_LIMIT = 1024 * 1024  # every other body: forms and JSON are small
CLOSE = {"Connection": "close"}  # an unread body must not be taken for the next request


class BodyTooLarge(Exception):
    """Raised into the app from `receive`: the route's parsing stops there."""


@dataclass
class _Counted:
    limit: int  # bytes of body read at most
    shown: int  # the limit the sender is told: the file's own on uploads
    read: int = 0
    over: bool = False
    started: bool = False
    body_done: bool = False  # the whole request body has been read (or there is none)


class BodyGuard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.file_limit = settings.import_max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind = UPLOADS.get(scope["path"]) if scope["method"] == "POST" else None
        request = Request(scope)
        if kind is not None and (refusal := _refusal(request, kind)) is not None:
            await refusal(scope, receive, send)
            return
        shown = self.file_limit if kind else BODY_LIMIT
        limit = shown + MULTIPART_OVERHEAD if kind else BODY_LIMIT
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(kind, int(declared), shown)(scope, receive, send)
            return
        chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
        body_done = not chunked and declared in ("", "0")  # no body at all
        await self._counting(scope, receive, send, kind, _Counted(limit, shown, body_done=body_done))

    async def _counting(
        self, scope: Scope, receive: Receive, send: Send, kind: str | None, state: _Counted
    ) -> None:
        async def counted() -> Message:
            if state.over:
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                state.read += len(message.get("body", b""))
                state.body_done = not message.get("more_body", False)
                if state.read > state.limit:
                    state.over = True
                    raise BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            if state.over:  # the app answers its parse error (400): the sender gets the 413 instead
                if message["type"] == "http.response.start" and not state.started:
                    state.started = True
                    await _too_large(kind, None, state.shown)(scope, receive, send)
                return
            if message["type"] == "http.response.start":
                state.started = True
                if not state.body_done:  # answered without the whole body: close, do not drain the rest
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except BodyTooLarge:
            if not state.started:
                state.started = True
                await _too_large(kind, None, state.shown)(scope, receive, send)


def _refusal(request: Request, kind: str) -> Response | None:
    """Who may upload, decided from the headers alone (the route checks it all again after parsing)."""
    if kind == "public":
        return None
    if kind == "api":
        try:
            api_learner(request)  # bearer token, or session + X-CSRF-Token
        except HTTPException as exc:
            headers = {**(exc.headers or {}), **CLOSE}
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)
        return None
    user = signed_in(request)
    if user is None:
        return RedirectResponse(login_url("/attestations"), status_code=303, headers=CLOSE)
    if user.learner_id is None:  # an administrator: no backpack of their own
        return PlainTextResponse("this account has no backpack of its own", 403, headers=CLOSE)
    try:
        check_csrf(request, request.headers.get(CSRF_HEADER) or request.query_params.get(CSRF_FIELD))
    except HTTPException as exc:
        return PlainTextResponse(str(exc.detail), exc.status_code, headers=CLOSE)
    return None


def _too_large(kind: str | None, declared: int | None, limit: int) -> Response:
    size = f"{declared:,} bytes" if declared is not None else f"more than {limit:,} bytes"
    detail = f"the {'upload' if kind else 'request body'} is {size}; the limit is {limit:,} bytes"
    if kind == "page":
        return PlainTextResponse(detail, 413, headers=CLOSE)
    return JSONResponse({"detail": detail}, 413, headers=CLOSE)
