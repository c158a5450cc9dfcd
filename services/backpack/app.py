"""The backpack web server: public verification and the Open Badges endpoints; learner pages come later."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ebackpack.config import Settings, get_settings
from ebackpack.credentials.keys import keyring_for
from ebackpack.credentials.store import award_by_code
from ebackpack.persistence.engine import make_engine, session_factory
from ebackpack.storage import ObjectStore
from services.issuer.rules import load_rules
from services.renderer.repository import CertificateRepository

from .deps import DbSession
from .openbadges import router as openbadges_router
from .verification import verify

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    rules = load_rules(settings.rules_file)
    app = FastAPI(title="e-Backpack", version="0.1.0")
    app.state.settings = settings
    app.state.rules = rules
    app.state.sessions = session_factory(make_engine(settings.db_url))
    keyring_for(settings)  # generates the keys on first start, or fails early on bad ones
    app.state.status_lists = {}
    app.include_router(openbadges_router)

    @app.get("/healthz")
    def health() -> dict[str, str]:
        return {"status": "ok", "service": "ebackpack"}

    @app.get("/verify/{code}/certificate.pdf", response_model=None)
    def certificate_download(code: str, session: DbSession) -> Response:
        """The current PDF through a pre-signed link that expires (`download_link_seconds`)."""
        award = award_by_code(session, code)
        current = CertificateRepository(session).latest(award.credential_id) if award else None
        if award is None or current is None:
            raise HTTPException(404, "no certificate PDF for this code")
        link = ObjectStore(settings, public=True).presigned_url(
            current.object_key, settings.download_link_seconds, f"certificate-{award.verification_code}.pdf")
        return RedirectResponse(link, status_code=307)

    @app.get("/verify/{code}", response_model=None)
    def verify_page(code: str, request: Request, session: DbSession, format: str | None = None) -> Response:
        result = verify(session, code)
        status = 200 if result.status != "unknown" else 404
        wants_json = format == "json" or "application/json" in request.headers.get("accept", "")
        if wants_json:
            return JSONResponse(result.model_dump(mode="json"), status_code=status)
        return HTMLResponse(TEMPLATES.get_template("verify.html").render(v=result, issuer=rules.issuer.name),
                            status_code=status)

    return app
