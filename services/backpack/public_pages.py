"""The public verification page `/verify/{code}` (HTML, or JSON), answered on a lean path.

Every QR scan and every employer's check lands here, so the page is answered by a pure ASGI layer in
front of the session cookie, CSRF and routing (`VerificationPages`), from an in-process cache of
finished answers (`VerificationCache`), with headers that let browsers and shared caches (a CDN) keep
the answer and revalidate it cheaply:

- **No session, no cookie.** The page is the same for everyone who holds the code: it reads no session
  and sets no cookie (`PublicSessions` gives every public path an empty, throwaway session, also for
  `/verify/{code}/certificate.pdf`, the error pages under `/verify/` and the public links `/s/{token}`).
  The language is the `lang` query parameter (the page's language switch is a GET form), else the
  language cookie the signed-in pages set, else Accept-Language, else Polish; the answer says so in
  `Vary`.
- **The bound.** A change of the credential (revocation, expiry, a new certificate version, the
  learner's erasure) is made by other processes (the issuer, the renderer): this process learns of it
  by reading the database again. An answer is built from one read of the database and is served for at
  most `EBACKPACK_VERIFY_CACHE_SECONDS` (default 60) after that read, by this process and by anyone
  downstream: `Cache-Control: public, max-age=N` counts down to that same moment (N is what is left of
  it, rounded down), and never past the credential's own `valid_until`. So a revocation committed at
  time t is shown by every request this server receives after t + bound, and no well-behaved cache
  keeps a "valid" answer past t + bound (plus the time the answer was in transit). With 0 nothing is
  kept: every request reads the database, and the answer says `no-cache`.
- **Revalidation.** Each answer has a strong `ETag` (a hash of its bytes); `If-None-Match` with it is
  answered 304 without a body while the answer is unchanged, and with the new answer once it changed.

The rate limit (`web.RateLimit`) and the security headers (`web.SecurityHeaders`) are outside this
layer and apply as to every page; the metrics count these answers under the route `/verify/{code}`.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import anyio
from sqlalchemy.orm import Session, sessionmaker
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .i18n import language_of
from .verification import Verification, verify

PREFIX = "/verify/"
# Public GET pages that never need to know who is signed in: no session read, no cookie written (the
# verification pages, and the learners' public links, which show everyone the same).
SESSION_FREE_PREFIXES = (PREFIX, "/s/")
# A wallet's protocol requests (OpenID4VCI, services/backpack/openid4vci.py), whatever their method: the
# offer's code or the access token is the authority, never a cookie.
WALLET_PREFIXES = (
    "/openid4vci/",
    "/.well-known/openid-credential-issuer",
    "/.well-known/oauth-authorization-server",
    # the VC-API (vcapi.py): machine clients, authorized by a bearer token or nobody
    "/credentials/verify",
    "/credentials/issue",
    "/credentials/status",
    "/presentations/verify",
)
MAX_ENTRIES = 4096  # codes kept (each with its few rendered answers): a few MB at most
MAX_CODE = 64  # characters of a code worth looking up (printed codes have 14); longer: unknown, not kept
MAX_QUERY = 512  # bytes of a query string read for `format` (i18n.language_of reads `lang`)
VARY = b"Accept, Accept-Language, Cookie"

Renderer = Callable[[Request, Verification, int], bytes]


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: bytes
    etag: bytes


@dataclass
class Entry:
    verification: Verification
    expires: float  # time.monotonic() after which the database must be read again
    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)  # (format, language)


class VerificationCache:
    """Verifications read from the database, each kept until `seconds` after its read (and no longer
    than the credential is valid); at most `MAX_ENTRIES`, the least recently used go first."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.sessions, self.seconds, self.clock, self.max_entries = sessions, seconds, clock, max_entries
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self.reads = 0  # database reads so far (tests, benchmark)

    def fresh(self, code: str) -> Entry | None:
        entry = self._entries.get(code)
        if entry is None:
            return None
        if self.clock() >= entry.expires:
            del self._entries[code]
            return None
        self._entries.move_to_end(code)
        return entry

    def read(self, code: str) -> Entry:
        """The verification as the database has it now (blocking: call it from a worker thread)."""
        started = self.clock()
        now = datetime.now(UTC)
        if len(code) > MAX_CODE:
            return Entry(Verification(code=code, status="unknown"), started)
        with self.sessions() as session:
            verification = verify(session, code, now)
        self.reads += 1
        expires = started + self.seconds
        if verification.status == "valid" and verification.valid_until is not None:
            expires = min(expires, started + (verification.valid_until - now).total_seconds())
        return Entry(verification, expires)

    def keep(self, code: str, entry: Entry) -> None:
        if self.seconds <= 0 or len(code) > MAX_CODE:
            return
        self._entries[code] = entry
        self._entries.move_to_end(code)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def max_age(self, entry: Entry) -> int:
        """Seconds a downstream cache may keep an answer of `entry`: what is left of its time here."""
        return max(0, math.floor(entry.expires - self.clock()))


def session_free(scope: Scope) -> bool:
    path: str = scope["path"]
    return path.startswith(WALLET_PREFIXES) or (
        scope["method"] in ("GET", "HEAD") and path.startswith(SESSION_FREE_PREFIXES)
    )


class PublicSessions:
    """Starlette's SessionMiddleware (its arguments), except for public GET pages: they get an empty
    session of their own (nothing read from the cookie, nothing written back: no `Set-Cookie`)."""

    def __init__(self, app: ASGIApp, /, **cookie: Any) -> None:
        self.app, self.sessions = app, SessionMiddleware(app, **cookie)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and session_free(scope):
            scope["session"] = {}
            await self.app(scope, receive, send)
            return
        await self.sessions(scope, receive, send)


def _code_of(path: str) -> str | None:
    """The code of `/verify/{code}` (one path segment), None for every other path."""
    if not path.startswith(PREFIX):
        return None
    code = path[len(PREFIX) :]
    return code if code and "/" not in code else None


def _format(scope: Scope) -> str | None:
    raw = scope.get("query_string", b"")[:MAX_QUERY].decode("latin-1")
    return next((value for key, value in reversed(parse_qsl(raw)) if key == "format"), None)


def _matches(if_none_match: str, etag: bytes) -> bool:
    """RFC 9110 13.1.2: weak comparison of every entity tag listed, or `*`."""
    wanted = etag.decode()
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == wanted:
            return True
    return False


class VerificationPages:
    """Pure ASGI: answers `GET`/`HEAD /verify/{code}` from `cache` (HTML through `render`, or JSON,
    as the route did); every other request goes on to `app`. `route` is the app's own route of the
    page, put in the scope so that the metrics count these answers under its template."""

    def __init__(
        self, app: ASGIApp, cache: VerificationCache, render: Renderer, route: Any, cache_seconds: float
    ) -> None:
        self.app, self.cache, self.render, self.route = app, cache, render, route
        self.cache_seconds = cache_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        code = _code_of(scope["path"]) if scope["type"] == "http" else None
        if code is None or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        scope["session"] = {}
        entry = self.cache.fresh(code)
        if entry is None:
            entry = await anyio.to_thread.run_sync(self.cache.read, code)
            self.cache.keep(code, entry)
        request = Request(scope)
        headers = request.headers
        json = _format(scope) == "json" or "application/json" in headers.get("accept", "")
        key = ("json", "") if json else ("html", language_of(request))
        answer = entry.answers.get(key) or self._answer(entry, request, json)
        entry.answers[key] = answer
        max_age = self.cache.max_age(entry) if self.cache_seconds > 0 else None
        await self._send(scope, send, answer, max_age, headers.get("if-none-match"))

    def _answer(self, entry: Entry, request: Request, json: bool) -> Answer:
        result = entry.verification
        status = 200 if result.status != "unknown" else 404
        if json:
            body = bytes(JSONResponse(result.model_dump(mode="json")).body)
            content_type = b"application/json"
        else:
            body = self.render(request, result, status)
            content_type = b"text/html; charset=utf-8"
        etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
        return Answer(status, body, content_type, etag)

    async def _send(
        self, scope: Scope, send: Send, answer: Answer, max_age: int | None, if_none_match: str | None
    ) -> None:
        cache_control = b"public, no-cache" if max_age is None else b"public, max-age=%d" % max_age
        headers = [(b"etag", answer.etag), (b"cache-control", cache_control), (b"vary", VARY)]
        if if_none_match is not None and _matches(if_none_match, answer.etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers += [
            (b"content-type", answer.content_type),
            (b"content-length", str(len(answer.body)).encode()),
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else answer.body
        await send({"type": "http.response.body", "body": body})
