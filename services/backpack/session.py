"""Who is signed in to the web pages, what they may do, and CSRF protection of their forms.

The session is Starlette's signed cookie (itsdangerous): `HttpOnly`, `SameSite=Lax`, `Secure` when the
public URL is https. Every way of logging in (development login, OpenID Connect, LTI 1.3 launch) ends
in `sign_in()`; pages ask for `PageUser` / `AdminUser`, the JSON API for `ApiLearner` (a session or a
bearer token from `ebackpack learner-token`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import Depends, Form, HTTPException, Request

from ebackpack.config import Settings
from ebackpack.credentials.keys import code_secret_for

from .auth import learner_of

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


def sign_in(request: Request, user: User) -> None:
    """Starts a fresh session (no fixation: whatever the session held before is dropped)."""
    language = request.session.get("lang")
    request.session.clear()
    request.session.update(
        {
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
    language = request.session.get("lang")
    request.session.clear()
    if language:
        request.session["lang"] = language


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
