"""Who is signed in to the web pages, what they may do, and CSRF protection of their forms.

The session is Starlette's signed cookie (itsdangerous): `HttpOnly`, `SameSite=Lax`, `Secure` when the
public URL is https. A signed cookie alone cannot be taken back, so a signed-in session also carries a
random id whose hash is stored (`WebSessions`): `SessionCheck` drops the sign-in of a cookie whose id is
no longer stored (logged out, expired), on every request. Every way of logging in (development login,
OpenID Connect, LTI 1.3 launch) ends in `sign_in()`; pages ask for `PageUser` / `AdminUser`, the JSON API
for `ApiLearner` (a session or a bearer token from `ebackpack learner-token`).

A learner's session lasts only as long as their profile: every way of logging in gives a backpack only to
a known learner, and the right to erasure (Moodle's user_deleted) deletes the profile, so an erased
learner's sessions end at once, as their public links do (shares.py). The backpack runs no worker to act
on `learner.erased`: the rows of erased learners are deleted at the next sign-in, as expired ones are.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

import anyio
from fastapi import Depends, Form, HTTPException, Request
from sqlalchemy import delete, exists
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from ebackpack.adapters.keystore import code_secret_for
from ebackpack.adapters.persistence.tables import Learner, WebSessionRow
from ebackpack.config import Settings

from .auth import learner_of
from .shares import Shares
from .wallets import forget_erased as forget_erased_wallets

Role = Literal["learner", "admin"]
SESSION_COOKIE = "ebackpack_session"
SESSION_SECONDS = 8 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@dataclass(frozen=True)
class User:
    """A signed-in person: a learner (their own backpack) and/or an admin (courses, revocation)."""

    learner_id: int | None
    role: Role
    name: str
    via: str  # "development login", "OpenID Connect", "LTI 1.3"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def session_secret(settings: Settings) -> str:
    """The cookie signing key: derived from the installation's secret, never the secret itself."""
    return hmac.new(code_secret_for(settings), b"web sessions", hashlib.sha256).hexdigest()


def _id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class WebSessions:
    """The signed-in sessions the server still honours (table `web_sessions`)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def open(self, user: User, now: datetime | None = None) -> str:
        """A new session id (random, 256 bits); expired rows and erased learners' rows are cleaned up on
        the way."""
        now = now or datetime.now(UTC)
        session_id = secrets.token_urlsafe(32)
        with self.sessions.begin() as db:
            db.execute(delete(WebSessionRow).where(WebSessionRow.expires_at < now))
            forget_erased_learners(db)
            db.add(
                WebSessionRow(
                    id_hash=_id_hash(session_id),
                    learner_id=user.learner_id,
                    role=user.role,
                    created_at=now,
                    expires_at=now + timedelta(seconds=SESSION_SECONDS),
                )
            )
        return session_id

    def alive(self, session_id: str, now: datetime | None = None) -> bool:
        with self.sessions() as db:
            row = db.get(WebSessionRow, _id_hash(session_id))
            if row is None:
                return False
            if row.learner_id is not None and db.get(Learner, row.learner_id) is None:
                return False  # the learner was erased
            expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
            return expires > (now or datetime.now(UTC))

    def close(self, session_id: str) -> None:
        with self.sessions.begin() as db:
            db.execute(delete(WebSessionRow).where(WebSessionRow.id_hash == _id_hash(session_id)))


def forget_erased_learners(db: Session) -> None:
    """Deletes the sessions, public links and wallet offers of learners erased since (no profile any
    more): they have not worked since the erasure; this removes the rows."""
    known = exists().where(Learner.id == WebSessionRow.learner_id)
    db.execute(delete(WebSessionRow).where(WebSessionRow.learner_id.is_not(None), ~known))
    Shares(db).forget_erased()
    forget_erased_wallets(db)


def _web_sessions(request: Request) -> WebSessions:
    return WebSessions(request.app.state.sessions)


def sign_in(request: Request, user: User) -> None:
    """Starts a fresh session (no fixation: whatever the session held before is dropped, and its id is
    no longer honoured)."""
    language = request.session.get("lang")
    store = _web_sessions(request)
    if isinstance(previous := request.session.get("sid"), str):
        store.close(previous)
    request.session.clear()
    request.session.update(
        {
            "sid": store.open(user),
            "learner": user.learner_id,
            "role": user.role,
            "name": user.name,
            "via": user.via,
            "csrf": secrets.token_urlsafe(32),
        }
    )
    if language:
        request.session["lang"] = language


def sign_out(request: Request) -> None:
    """Ends the session on the server too: a copy of the cookie taken before is worth nothing."""
    if isinstance(session_id := request.session.get("sid"), str):
        _web_sessions(request).close(session_id)
    _forget(request.session)


def _forget(session: dict[str, Any]) -> None:
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language


class SessionCheck:
    """Pure ASGI, just inside Starlette's SessionMiddleware: a cookie that names a signed-in user but
    whose session id the server no longer holds (logged out, expired, or from before server-side
    sessions) is treated as signed out."""

    def __init__(self, app: ASGIApp, sessions: sessionmaker[Session]) -> None:
        self.app = app
        self.store = WebSessions(sessions)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session = scope.get("session") if scope["type"] in ("http", "websocket") else None
        if session and session.get("role"):
            session_id = session.get("sid")
            if not isinstance(session_id, str) or not await anyio.to_thread.run_sync(
                self.store.alive, session_id
            ):
                _forget(session)
        await self.app(scope, receive, send)


def signed_in(request: Request) -> User | None:
    session = request.session
    if session.get("role") not in ("learner", "admin"):
        return None
    learner = session.get("learner")
    return User(
        learner_id=learner if isinstance(learner, int) else None,
        role=session["role"],
        name=str(session.get("name", "")),
        via=str(session.get("via", "")),
    )


class LoginRequired(Exception):
    """A page needs a signed-in user: the app answers with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def local_path(path: str | None) -> str:
    """Only paths of this site: `next` must not send anyone elsewhere (`//host`, `/\\host` do)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path if path.isprintable() else "/"


def login_url(next_path: str) -> str:
    return f"/login?next={quote(next_path, safe='/')}"


def page_user(request: Request) -> User:
    user = signed_in(request)
    if user is None:
        raise LoginRequired(request.url.path)
    return user


def page_learner(user: Annotated[User, Depends(page_user)]) -> User:
    if user.learner_id is None:
        raise HTTPException(403, "this account has no backpack of its own")
    return user


def page_admin(user: Annotated[User, Depends(page_user)]) -> User:
    if not user.is_admin:
        raise HTTPException(403, "only administrators may do this")
    return user


def api_learner(request: Request) -> int:
    """The API's learner: a bearer token, or the signed-in session (state changes then need CSRF)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        try:
            return learner_of(request.app.state.settings, token.strip())
        except ValueError as exc:
            raise HTTPException(
                401, str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            ) from None
    user = signed_in(request)
    if user is None or user.learner_id is None:
        raise HTTPException(
            401, "log in first, or send Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"}
        )
    if request.method not in SAFE_METHODS:
        check_csrf(request, request.headers.get(CSRF_HEADER))
    return user.learner_id


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def check_csrf(request: Request, sent: str | None) -> None:
    expected = request.session.get("csrf")
    if not expected or not sent or not hmac.compare_digest(str(expected), sent):
        raise HTTPException(
            403, "the form has expired or did not come from this site: reload the page and try again"
        )


def checked_form(request: Request, csrf_token: Annotated[str | None, Form()] = None) -> None:
    """For every state-changing form: the session's token must come back in the hidden field."""
    check_csrf(request, csrf_token)


PageUser = Annotated[User, Depends(page_user)]
PageLearner = Annotated[User, Depends(page_learner)]
AdminUser = Annotated[User, Depends(page_admin)]
ApiLearner = Annotated[int, Depends(api_learner)]
CsrfChecked = Depends(checked_form)
