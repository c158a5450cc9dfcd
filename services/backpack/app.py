"""The backpack web server: the learner's pages (certificates, badges, external attestations, public
links), administration, the public verification pages, the Open Badges endpoints and the JSON API."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute

from ebackpack.adapters.certificate_reads import CertificateReads
from ebackpack.adapters.credential_store import award_by_code
from ebackpack.adapters.metrics import install_http_metrics
from ebackpack.adapters.storage import ObjectStore
from ebackpack.bootstrap import Platform, build
from ebackpack.config import Settings

from .admin import router as admin_router
from .api import router as api_router
from .attestations import router as attestations_router
from .bodies import BodyGuard
from .commands import AdminCommands
from .deps import DbSession
from .lti import router as lti_router
from .oidc import router as oidc_router
from .openbadges import router as openbadges_router
from .openid4vci import router as openid4vci_router
from .pages import router as pages_router
from .pdf_check import router as pdf_check_router
from .preferences import router as preferences_router
from .public_pages import PublicSessions, VerificationCache, VerificationPages
from .session import SESSION_COOKIE, SESSION_SECONDS, AdminUser, SessionCheck, session_secret
from .uploads import Announcer, AttestationUploads
from .vcapi import router as vcapi_router
from .verification import Verification, verify
from .web import (
    STATIC_DIR,
    install_error_pages,
    install_rate_limit,
    install_security_headers,
    render,
)


def create_app(settings: Settings | None = None, platform: Platform | None = None) -> FastAPI:
    """The web app, built from the composition root (`platform`, default: `build(settings)`)."""
    platform = platform or build(settings)
    settings = platform.settings
    # Outside the embedded stack the API description is for administrators only (see _admin_docs).
    public_docs = settings.embedded
    app = FastAPI(
        title="e-Backpack",
        version="0.1.0",
        # The metrics are Prometheus' (adapters/metrics.py); FastAPI's OpenTelemetry hooks, with no provider
        # configured, would only look for one on every request (~15 µs of the verification page's ~100).
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url="/docs" if public_docs else None,
        redoc_url="/redoc" if public_docs else None,
        openapi_url="/openapi.json" if public_docs else None,
        description=(
            "The learner's e-Backpack: credentials issued from Moodle, external attestations, public "
            "verification. The JSON API takes a session cookie (with the `X-CSRF-Token` header for changes) "
            "or `Authorization: Bearer <token>`."
        ),
    )
    app.state.platform = platform
    app.state.settings, app.state.rules, app.state.sessions = settings, platform.rules, platform.sessions
    platform.keys  # noqa: B018 (generates the keys on first start, or fails early on bad ones)
    app.state.status_lists = {}
    app.state.uploads = AttestationUploads(platform.sessions, platform.objects, settings, Announcer(settings))
    app.state.commands = AdminCommands(platform)  # revocation and re-render, for the issuer
    app.state.verifications = VerificationCache(platform.sessions, settings.verify_cache_seconds)

    for router in (
        openbadges_router,
        openid4vci_router,
        vcapi_router,
        pdf_check_router,
        attestations_router,
        api_router,
        pages_router,
        preferences_router,
        admin_router,
        oidc_router,
        lti_router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _public_routes(app, settings)
    if not public_docs:
        _admin_docs(app)

    install_error_pages(app)
    # Before any route reads a body: who may upload, and every body counted as it streams.
    app.add_middleware(BodyGuard, settings=settings)
    # Just inside the session cookie: a sign-in the server no longer holds (logout, expiry) is dropped.
    app.add_middleware(SessionCheck, sessions=app.state.sessions)
    # The session cookie, for every page but the public ones (public_pages.PublicSessions).
    app.add_middleware(
        PublicSessions,
        secret_key=session_secret(settings),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_SECONDS,
        same_site="lax",
        https_only=settings.public_url.startswith("https://"),
    )
    # The verification page's lean path, in front of the session and the routing: cached answers.
    app.add_middleware(
        VerificationPages,
        cache=app.state.verifications,
        render=_verification_page(app),
        route=_route(app, "/verify/{code}"),
        cache_seconds=settings.verify_cache_seconds,
    )
    install_rate_limit(app, settings)
    install_security_headers(app, settings)
    # Outside the rest: counts every answer (429s, error pages too). GET /metrics on this port only in
    # the embedded stack; elsewhere on EBACKPACK_METRICS_PORT (ebackpack.adapters.webserver).
    install_http_metrics(app, "backpack", public=settings.embedded)
    return app


def _route(app: FastAPI, path: str) -> BaseRoute:
    return next(r for r in app.router.routes if getattr(r, "path", None) == path)


def _verification_page(app: FastAPI) -> Callable[[Request, Verification, int], bytes]:
    issuer = app.state.rules.issuer.name

    def page(request: Request, result: Verification, status: int) -> bytes:
        return bytes(render(request, "verify.html", status, v=result, issuer=issuer).body)

    return page


def _admin_docs(app: FastAPI) -> None:
    """`/docs` and `/openapi.json` for a signed-in administrator (others: the login, or 403)."""

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_admin: AdminUser) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs(_admin: AdminUser) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} API")


def _public_routes(app: FastAPI, settings: Settings) -> None:
    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok", "service": "ebackpack"}

    @app.get("/verify/{code}/certificate.pdf", response_model=None, tags=["verification"])
    def certificate_download(code: str, session: DbSession) -> Response:
        """The current PDF through a pre-signed link that expires (`download_link_seconds`)."""
        award = award_by_code(session, code)
        current = CertificateReads(session).latest(award.credential_id) if award else None
        if award is None or current is None:
            raise HTTPException(404, "no certificate PDF for this code")
        link = ObjectStore(settings, public=True).presigned_url(
            current.object_key, settings.download_link_seconds, f"certificate-{award.verification_code}.pdf"
        )
        return RedirectResponse(link, status_code=307)

    @app.get("/verify/{code}", response_model=None, tags=["verification"])
    def verify_page(code: str, request: Request, session: DbSession, format: str | None = None) -> Response:
        """The QR target: valid / revoked / expired / unknown, in Polish or English (`lang`), or as JSON.

        GET and HEAD are answered before they reach this route, from a cache whose answers change within
        `EBACKPACK_VERIFY_CACHE_SECONDS` of the credential (public_pages.VerificationPages): this route
        documents the page and answers only what that layer passes on."""
        result = verify(session, code)
        status = 200 if result.status != "unknown" else 404
        if format == "json" or "application/json" in request.headers.get("accept", ""):
            return JSONResponse(result.model_dump(mode="json"), status_code=status)
        return render(request, "verify.html", status, v=result, issuer=app.state.rules.issuer.name)
