"""Request-scoped dependencies, module-level as FastAPI needs them with postponed annotations."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.credential_store import CredentialStore
from ebackpack.bootstrap import Platform

from .uploads import AttestationUploads
from .views import BackpackViews


def db_session(request: Request) -> Iterator[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(db_session)]


def platform(request: Request) -> Platform:
    """The composition root the app was built from (ebackpack.bootstrap)."""
    built: Platform = request.app.state.platform
    return built


def credential_store(request: Request, session: DbSession) -> CredentialStore:
    return platform(request).credential_store(session)


Store = Annotated[CredentialStore, Depends(credential_store)]


def backpack_views(request: Request, session: Session) -> BackpackViews:
    """The pages' and the API's read model, on the request's database session."""
    built = platform(request)
    return BackpackViews(session, built.rules, built.urls)


def attestation_uploads(request: Request) -> AttestationUploads:
    uploads: AttestationUploads = request.app.state.uploads
    return uploads
