"""Login through the platform, what OpenID Connect (oidc.py) and LTI 1.3 (lti.py) share: the identity the
platform vouches for mapped to a learner, and the signed-in user made of it.

A person gets a backpack when they are a known learner (OpenID Connect: by the verified e-mail address;
LTI: by the Moodle user id in `sub`, else the e-mail address), and the admin role when their e-mail address
is in `EBACKPACK_ADMIN_EMAILS` (LTI: also when Moodle says they administer the site). Both then call
`session.sign_in()`. Refusals are HTTPExceptions with a plain-words reason: the app's error page shows it
to browsers, API clients get it as `detail`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import HTTPException, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from ebackpack.adapters.persistence.tables import Learner
from ebackpack.config import Settings

from .session import Role, User

HTTP_TIMEOUT = 10.0  # seconds for any call to the identity provider or the platform
LEEWAY = 60  # seconds of clock skew tolerated on exp / iat
T = TypeVar("T")


def settings_of(request: Request) -> Settings:
    """The app's settings, typed (FastAPI keeps them untyped in `app.state`)."""
    settings: Settings = request.app.state.settings
    return settings


def app_shared(request: Request, name: str, make: Callable[[], T]) -> T:
    """One object per app (OAuth client, key cache, nonce ledger), made on first use."""
    value: T | None = getattr(request.app.state, name, None)
    if value is None:
        value = make()
        setattr(request.app.state, name, value)
    return value


def shown(value: object) -> str:
    """A value from a request, shortened for an error message."""
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class Match:
    """The learner an identity from the platform belongs to, with the name the pages greet them by."""

    learner_id: int
    name: str


def _match(learner: Learner) -> Match:
    return Match(learner.id, f"{learner.firstname} {learner.lastname}".strip() or learner.email)


def learner_by_email(session: Session, email: str) -> Match | None:
    found = session.scalars(
        select(Learner).where(func.lower(Learner.email) == email.lower()).order_by(Learner.id).limit(2)
    ).all()
    if len(found) > 1:  # Moodle may allow shared addresses: never guess whose backpack it is
        raise HTTPException(
            403,
            f"Several learners share the e-mail address {shown(email)}, so the "
            "backpack cannot be chosen by it. Ask an administrator.",
        )
    return _match(found[0]) if found else None


def learner_by_id(session: Session, learner_id: int) -> Match | None:
    learner = session.get(Learner, learner_id)
    return _match(learner) if learner else None


async def find_learner(request: Request, find: Callable[[Session], Match | None]) -> Match | None:
    """A database lookup in a worker thread, with a session of its own (the routes are async)."""
    sessions: sessionmaker[Session] = request.app.state.sessions

    def run() -> Match | None:
        with sessions() as session:
            return find(session)

    return await run_in_threadpool(run)


def person(match: Match | None, *, admin: bool, name: str, via: str, unknown: str) -> User:
    """The signed-in user, or 403 when the person is neither a learner here nor an admin."""
    if match is None and not admin:
        raise HTTPException(403, f"This account has no backpack here: {unknown}")
    role: Role = "admin" if admin else "learner"
    return User(
        learner_id=match.learner_id if match else None, role=role, name=match.name if match else name, via=via
    )
