"""Request-scoped dependencies, module-level as FastAPI needs them with postponed annotations."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.credential_store import CredentialStore
from ebackpack.config import Settings
from ebackpack.domain.credentials.urls import PublicUrls
from ebackpack.domain.rules import RuleBook

from .uploads import AttestationUploads
from .views import BackpackViews


def db_session(request: Request) -> Iterator[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(db_session)]


def credential_store(request: Request, session: DbSession) -> CredentialStore:
    settings: Settings = request.app.state.settings
    rules: RuleBook = request.app.state.rules
    return CredentialStore.for_settings(session, rules, settings)


Store = Annotated[CredentialStore, Depends(credential_store)]


def backpack_views(request: Request, session: Session) -> BackpackViews:
    """The pages' and the API's read model, on the request's database session."""
    return BackpackViews(session, request.app.state.rules, PublicUrls(request.app.state.settings.public_url))


def attestation_uploads(request: Request) -> AttestationUploads:
    uploads: AttestationUploads = request.app.state.uploads
    return uploads
