"""The backpack web server. Today: the public verification endpoint; the learner's pages come later."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.config import Settings, get_settings
from ebackpack.persistence.engine import make_engine, session_factory
from services.issuer.rules import load_rules

from .verification import verify

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


def db_session(request: Request) -> Iterator[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(db_session)]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    issuer_name = load_rules(settings.rules_file).issuer.name
    app = FastAPI(title="e-Backpack", version="0.1.0")
    app.state.sessions = session_factory(make_engine(settings.db_url))

    @app.get("/healthz")
    def health() -> dict[str, str]:
        return {"status": "ok", "service": "ebackpack"}

    @app.get("/verify/{code}", response_model=None)
    def verify_page(code: str, request: Request, session: DbSession, format: str | None = None) -> Response:
        result = verify(session, code)
        status = 200 if result.status != "unknown" else 404
        wants_json = format == "json" or "application/json" in request.headers.get("accept", "")
        if wants_json:
            return JSONResponse(result.model_dump(mode="json"), status_code=status)
        return HTMLResponse(TEMPLATES.get_template("verify.html").render(v=result, issuer=issuer_name),
                            status_code=status)

    return app
