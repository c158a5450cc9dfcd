"""The web layer's plumbing: page rendering in the visitor's language, flash messages, error pages,
security headers and the rate limit of the public verification pages."""

from __future__ import annotations

import ipaddress
import tempfile
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from limits import RateLimitItem, parse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ebackpack.adapters.credential_exports import ExportError, export
from ebackpack.adapters.credential_store import CredentialStore
from ebackpack.adapters.persistence.tables import AwardRow
from ebackpack.config import Settings

from .i18n import LANGUAGE_NAMES, LANGUAGES, format_date, language_of, translate
from .public_pages import session_free
from .session import LoginRequired, csrf_token, login_url, signed_in

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
STATIC_DIR = Path(__file__).parent / "static"
DOWNLOAD_CHUNK = 256 * 1024  # bytes read from a spooled download at a time
# Every public lookup by a code or link token (guessing them is what the limit slows down).
RATE_LIMITED_PREFIXES = (
    "/verify/",
    "/s/",
    "/ob2/assertions/",
    "/openid4vci/",
    "/credentials/verify",
    "/presentations/verify",
)


def http_url(value: object) -> bool:
    """Only http(s) addresses become links: a `javascript:` or `data:` URL from a credential stays text.

    `urlsplit` drops tabs and newlines like browsers do, so `java<TAB>script:` is seen as `javascript:`."""
    if not isinstance(value, str):
        return False
    parts = urlsplit(value.strip())
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


TEMPLATES.env.tests["http_url"] = http_url


def attachment(filename: str) -> str:
    """A `Content-Disposition` for any file name (RFC 6266): an ASCII fallback for old clients and the
    exact name as UTF-8 in `filename*`. Headers are Latin-1: a raw `ś` in them would be a 500."""
    fallback = "".join(c if " " <= c < "\x7f" and c not in '"\\;' else "_" for c in filename) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def download(store: CredentialStore, award: AwardRow, fmt: str) -> Response:
    """A credential in one export format, as a file to save; 404 when it has no such form."""
    try:
        exported = export(store, award, fmt)
    except ExportError as exc:
        raise HTTPException(404, str(exc)) from None
    headers = {"Content-Disposition": attachment(exported.filename)}
    return Response(exported.content, media_type=exported.media_type, headers=headers)


def spooled_download(
    write: Callable[[BinaryIO], object], headers: dict[str, str], media_type: str = "application/zip"
) -> Response:
    """A file built by `write` into a temporary file (memory holds one chunk, not the file), then sent
    with its length, so the browser shows progress; the temporary file is closed once sent, or at once
    if `write` raises."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the response when it has been sent)
    try:
        write(spool)
    except BaseException:
        spool.close()
        raise
    size = spool.tell()
    spool.seek(0)
    return StreamingResponse(
        iter(lambda: spool.read(DOWNLOAD_CHUNK), b""),
        media_type=media_type,
        headers={**headers, "Content-Length": str(size)},
        background=BackgroundTask(spool.close),
    )


def flash(request: Request, text: str, **values: object) -> None:
    """A one-time message for the next page, kept untranslated so that it follows a language switch."""
    request.session.setdefault("flash", []).append([text, values])


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = language_of(request)

    def t(text: str, **values: object) -> str:
        return translate(text, lang, **values)

    def date(moment: datetime | None) -> str:
        return format_date(moment, lang)

    messages = [t(text, **values) for text, values in request.session.pop("flash", [])]
    context |= {
        "lang": lang,
        "t": t,
        "date": date,
        "user": signed_in(request),
        "csrf": csrf_token(request),
        "messages": messages,
        "languages": [(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        "path": request.url.path,
        "settings": request.app.state.settings,
        # A page for everyone (no session): its language switch is a GET form (?lang=), no CSRF token.
        "public": session_free(request.scope),
    }
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(
        ("/api/", "/ob2/", "/ob3/", "/status/")
    ) and "text/html" in request.headers.get("accept", "text/html")


ERROR_TITLES = {
    403: "Not allowed",
    404: "Page not found",
    429: "Too many requests: try again in a minute.",
    503: "Unavailable for a moment: try again.",
}


def install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(login_url(exc.next_path), status_code=303)

    @app.exception_handler(StarletteHTTPException)  # also unknown paths and wrong methods (Starlette's own)
    async def error_page(request: Request, exc: StarletteHTTPException) -> Response:
        if not _wants_html(request) or exc.status_code < 400:
            return await http_exception_handler(request, exc)
        title = ERROR_TITLES.get(exc.status_code, "Something went wrong")
        return render(request, "error.html", exc.status_code, title=title, detail=exc.detail)


def content_security_policy(settings: Settings) -> str:
    """Scripts, styles and images only from us; pages may be framed by the Moodle site (LTI tool)."""
    moodle = urlsplit(settings.moodle_url)
    frame = f"'self' {moodle.scheme}://{moodle.netloc}" if moodle.netloc else "'self'"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; "
        f"frame-ancestors {frame}"
    )


class SecurityHeaders:
    """Pure ASGI: the security headers on every answer that does not set its own."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        headers = [
            (b"content-security-policy", content_security_policy(settings).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
        ]
        if settings.public_url.startswith("https://"):
            headers.append((b"strict-transport-security", b"max-age=31536000"))
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                missing = [(name, value) for name, value in self.headers if name not in present]
                if missing:
                    message = {**message, "headers": [*message.get("headers", []), *missing]}
            await send(message)

        await self.app(scope, receive, with_headers)


def install_security_headers(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(SecurityHeaders, settings=settings)


# Client keys the rate limit keeps at most (~100 bytes each with a short window of hits).
MAX_RATE_KEYS = 100_000


def client_key(address: str) -> str:
    """What the rate limit counts by: an IPv4 address, or the /64 network of an IPv6 address (one
    subscriber's usual allocation: counting each of its 2^64 addresses apart would let one client pick a
    fresh address per request)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an address (a test client's name, a Unix socket)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # an IPv4 client on a dual-stack socket
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class MovingWindow:
    """At most `amount` hits per `seconds` for each key, over a moving window, exactly as `limits`'
    moving window counts (a refused hit is not counted). Each key keeps the times of its last `amount`
    hits, so a hit costs the same however high the limit; `limits`' in-memory moving window inserts at
    the front of a list, which at thousands of hits a second from one address (a benchmark with the
    limit lifted) cost over 100 µs a hit. Keys whose last hit left the window are forgotten once per
    window, and at most `max_keys` are kept: past that, the key that came first is dropped (its count
    starts again), so a flood of distinct addresses cannot grow the memory without bound. Not
    thread-safe: called from the event loop only."""

    def __init__(
        self,
        amount: int,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_RATE_KEYS,
    ) -> None:
        self.amount, self.seconds, self.clock, self.max_keys = amount, seconds, clock, max_keys
        self._hits: dict[str, deque[float]] = {}
        self._sweep_at = clock() + seconds

    def hit(self, key: str) -> bool:
        now = self.clock()
        if now >= self._sweep_at:
            cutoff = now - self.seconds
            self._hits = {k: times for k, times in self._hits.items() if times[-1] > cutoff}
            self._sweep_at = now + self.seconds
        times = self._hits.get(key)
        if times is None:
            if len(self._hits) >= self.max_keys:
                del self._hits[next(iter(self._hits))]  # the oldest key (dicts keep insertion order)
            times = self._hits[key] = deque(maxlen=self.amount)
        if len(times) == self.amount and times[0] > now - self.seconds:
            return False
        times.append(now)  # the oldest of a full window falls out
        return True


class RateLimit:
    """Pure ASGI: the public lookups by code or token per client address (a moving window, in this
    process: several web processes each keep their own count). The address is the peer's own unless the
    peer is one of EBACKPACK_TRUSTED_PROXIES (ebackpack/adapters/webserver.py): a forwarded header from
    anyone else is ignored, so a client cannot pick a fresh address per request."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        limit: RateLimitItem = parse(settings.verify_rate_limit)
        self.window = MovingWindow(limit.amount, limit.get_expiry())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(RATE_LIMITED_PREFIXES):
            client = scope.get("client")
            if not self.window.hit(client_key(client[0]) if client else "unknown"):
                scope.setdefault("session", {})  # outside the session: these pages are public anyway
                request = Request(scope)
                refused: Response = (
                    render(request, "error.html", 429, title=ERROR_TITLES[429], detail="")
                    if _wants_html(request)
                    else JSONResponse({"detail": "too many requests"}, status_code=429)
                )
                refused.headers["Retry-After"] = "60"
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_rate_limit(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(RateLimit, settings=settings)
