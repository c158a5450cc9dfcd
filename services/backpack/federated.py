"""Login through the platform: OpenID Connect (authorization code + PKCE) and LTI 1.3 launches.

Both end in `sign_in()`. A person gets a backpack when they are a known learner (OpenID Connect: by
the verified e-mail address; LTI: by the Moodle user id in `sub`, else the e-mail address), and the
admin role when their e-mail address is in `EBACKPACK_ADMIN_EMAILS` (LTI: also when Moodle says they
administer the site). Refusals are HTTPExceptions with a plain-words reason: the app's error page
shows it to browsers, API clients get it as `detail`.

As an LTI tool the pages are shown inside Moodle, in an iframe: the Content-Security-Policy
`frame-ancestors` of the app must allow the Moodle origin (web.py derives it from `moodle_url`). Mind
the cookies there too: in a cross-site iframe browsers do not send SameSite=Lax cookies, so the
session only works in the frame when Moodle and the backpack are the same site (one registrable
domain, e.g. moodle.uni.example / backpack.uni.example); otherwise set the tool to open in a new
window (then the launch is a top-level navigation and the Lax session cookie is set and sent).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import httpx
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.starlette_client import OAuth
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    InvalidKeyIdError,
    JoseError,
    MissingAlgorithmError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import KeySet
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from ebackpack.adapters.keystore import code_secret_for
from ebackpack.adapters.persistence.tables import Learner
from ebackpack.config import Settings

from .session import Role, User, local_path, sign_in

router = APIRouter(include_in_schema=False)

HTTP_TIMEOUT = 10.0  # seconds for any call to the identity provider or the platform
LEEWAY = 60  # seconds of clock skew tolerated on exp / iat

OIDC_CLIENT = "platform"
OIDC_NEXT = "oidc_next"  # session key: where to go after the provider sends the person back

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
LTI_ADMINISTRATOR = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator"
LTI_ALGORITHMS = ["RS256"]  # the only one the IMS Security Framework allows for launch tokens
STATE_SECONDS = 600  # from /lti/login to /lti/launch
KEYS_SECONDS = 300  # how long the platform's JWKS is trusted before it is fetched again
KEYS_REFETCH_SECONDS = 30  # an unknown `kid` refetches at most this often (no fetch storms)
STATE_SALT = "ebackpack.lti-login-state"
BROWSER_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")

T = TypeVar("T")


# --------------------------------------------------------------------------------------------- shared


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _shared(request: Request, name: str, make: Callable[[], T]) -> T:
    """One object per app (OAuth client, key cache, nonce ledger), made on first use."""
    value: T | None = getattr(request.app.state, name, None)
    if value is None:
        value = make()
        setattr(request.app.state, name, value)
    return value


def _show(value: object) -> str:
    """A value from a request, shortened for an error message."""
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class Match:
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
            f"Several learners share the e-mail address {_show(email)}, so the "
            "backpack cannot be chosen by it. Ask an administrator.",
        )
    return _match(found[0]) if found else None


def learner_by_id(session: Session, learner_id: int) -> Match | None:
    learner = session.get(Learner, learner_id)
    return _match(learner) if learner else None


async def _lookup(request: Request, find: Callable[[Session], Match | None]) -> Match | None:
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


# ------------------------------------------------------------------------------------ OpenID Connect


def _oidc_client(request: Request) -> Any:
    settings = _settings(request)
    if not settings.oidc_issuer:
        raise HTTPException(404, "OpenID Connect login is not set up here")
    if not settings.oidc_client_id or settings.oidc_client_secret is None:
        raise HTTPException(
            503,
            "OpenID Connect login is not fully configured: set "
            "EBACKPACK_OIDC_CLIENT_ID and EBACKPACK_OIDC_CLIENT_SECRET",
        )
    return _shared(request, "oidc_client", lambda: _register_oidc(settings))


def _register_oidc(settings: Settings) -> Any:
    # authlib caches the discovery document and the provider's JWKS in this client (a new `kid`
    # refetches the JWKS), so it lives as long as the app.
    assert settings.oidc_issuer and settings.oidc_client_secret is not None
    return OAuth().register(
        OIDC_CLIENT,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret.get_secret_value(),
        server_metadata_url=f"{settings.oidc_issuer.rstrip('/')}/.well-known/openid-configuration",
        client_kwargs={
            "scope": "openid email profile",
            "code_challenge_method": "S256",
            "timeout": HTTP_TIMEOUT,
        },
    )


def _oidc_claims_options(settings: Settings) -> dict[str, Any]:
    # authlib checks the signature, exp, nonce and azp itself, but `aud` only when asked to.
    assert settings.oidc_issuer
    issuers = sorted({settings.oidc_issuer, settings.oidc_issuer.rstrip("/")})
    return {
        "iss": {"essential": True, "values": issuers},
        "aud": {"essential": True, "value": settings.oidc_client_id},
    }


@router.get("/login/oidc")
async def oidc_login(request: Request, next: str = "/") -> Response:
    """Off to the identity provider; authlib keeps state, nonce and PKCE verifier in the session."""
    client = _oidc_client(request)
    settings = _settings(request)
    request.session[OIDC_NEXT] = local_path(next)
    try:
        redirect: Response = await client.authorize_redirect(
            request, f"{settings.public_url.rstrip('/')}/auth/oidc/callback"
        )
    except (httpx.HTTPError, ValueError) as exc:
        raise HTTPException(502, f"The identity provider could not be reached: {_show(exc)}") from None
    return redirect


@router.get("/auth/oidc/callback")
async def oidc_callback(request: Request) -> Response:
    client = _oidc_client(request)
    settings = _settings(request)
    claims = await _oidc_id_token(request, client, settings)
    email = _verified_email(claims)
    match = await _lookup(request, lambda session: learner_by_email(session, email))
    user = person(
        match,
        admin=email in settings.admins,
        name=str(claims.get("name") or email),
        via="OpenID Connect",
        unknown=f"no learner has the e-mail address {_show(email)}.",
    )
    next_path = local_path(request.session.get(OIDC_NEXT))
    sign_in(request, user)
    return RedirectResponse(next_path, status_code=303)


async def _oidc_id_token(request: Request, client: Any, settings: Settings) -> Mapping[str, Any]:
    """Code -> tokens (with the PKCE verifier), then the ID token's verified claims."""
    try:
        token = await client.authorize_access_token(
            request, claims_options=_oidc_claims_options(settings), leeway=LEEWAY
        )
    except MismatchingStateError:
        raise HTTPException(
            400,
            "This login was not started in this browser, or it took too long. "
            "Start again from the login page.",
        ) from None
    except OAuthError as exc:
        raise HTTPException(401, f"The identity provider refused the login: {_show(exc)}") from None
    except JoseError as exc:
        raise HTTPException(
            401,
            "The ID token from the identity provider failed verification "
            f"({exc.error}: {_show(exc.description)}).",
        ) from None
    except (httpx.HTTPError, ValueError) as exc:
        raise HTTPException(502, f"The identity provider could not be reached: {_show(exc)}") from None
    claims: Mapping[str, Any] | None = token.get("userinfo")  # authlib's verified ID token claims
    if not claims:
        raise HTTPException(401, "The identity provider answered without an ID token.")
    return claims


def _verified_email(claims: Mapping[str, Any]) -> str:
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise HTTPException(
            403, "The identity provider did not share your e-mail address, so your backpack cannot be found."
        )
    if claims.get("email_verified") in (False, "false"):
        raise HTTPException(
            403,
            "Your e-mail address is not verified at the identity provider, so it "
            "cannot be used to find your backpack.",
        )
    return email.strip().lower()


# --------------------------------------------------------------------------------------------- LTI 1.3
#
# State and nonce across the cross-site launch. Moodle POSTs the launch from its own site, so the
# SameSite=Lax session cookie is not sent with it. The login step therefore
#  - signs the nonce into `state` (itsdangerous, key derived from the installation's secret, 10 minutes):
#    nothing to store, any web process can check it, and nobody can make up a state of their own;
#  - binds that state to the browser: `state` carries a hash of a random token that goes into a cookie
#    of its own (HttpOnly; on https `__Host-` prefixed, Secure, SameSite=None so the cross-site POST
#    carries it, Partitioned so browsers that block third-party cookies keep it in the Moodle frame).
#    Without the binding, someone could post their own valid launch into a victim's browser (login CSRF).
#    Over plain http (development) the cookie is SameSite=Lax: browsers refuse SameSite=None without
#    Secure; Moodle and the tool on one host (localhost, different ports) are the same site anyway.
# The launch must come back with the id_token whose nonce is the one in the state, and each nonce is
# accepted once: the ledger keeps used nonces as long as their state could still be presented.


@dataclass(frozen=True)
class LtiConfig:
    issuer: str
    client_id: str
    auth_url: str
    jwks_url: str
    deployments: frozenset[str]


def _lti_config(request: Request) -> LtiConfig:
    settings = _settings(request)
    if not settings.lti_issuer:
        raise HTTPException(404, "LTI launches are not set up here")
    if not (settings.lti_client_id and settings.lti_auth_url and settings.lti_jwks_url):
        raise HTTPException(
            503,
            "LTI 1.3 is not fully configured: set EBACKPACK_LTI_CLIENT_ID, "
            "EBACKPACK_LTI_AUTH_URL and EBACKPACK_LTI_JWKS_URL",
        )
    deployments = frozenset(d.strip() for d in settings.lti_deployment_ids.split(",") if d.strip())
    return LtiConfig(
        settings.lti_issuer, settings.lti_client_id, settings.lti_auth_url, settings.lti_jwks_url, deployments
    )


def _state_serializer(settings: Settings) -> URLSafeTimedSerializer:
    # A key of its own: a leaked state reveals nothing about the verification-code secret.
    key = hmac.new(code_secret_for(settings), b"lti login state", hashlib.sha256).hexdigest()
    return URLSafeTimedSerializer(key, salt=STATE_SALT)


def _browser_cookie(settings: Settings) -> str:
    return "__Host-ebackpack_lti" if settings.public_url.startswith("https://") else "ebackpack_lti"


def _browser_cookie_header(settings: Settings, token: str) -> str:
    # Written by hand: Starlette's set_cookie only knows `Partitioned` on Python 3.14.
    https = settings.public_url.startswith("https://")
    flags = "Secure; SameSite=None; Partitioned" if https else "SameSite=Lax"
    return f"{_browser_cookie(settings)}={token}; Max-Age={STATE_SECONDS}; Path=/; HttpOnly; {flags}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _parameters(request: Request) -> dict[str, str]:
    """Moodle starts the login with a form POST; other platforms use GET."""
    params = dict(request.query_params)
    if request.method == "POST":
        form = await request.form()
        params |= {key: value for key, value in form.items() if isinstance(value, str)}
    return params


def _check_login(params: Mapping[str, str], config: LtiConfig) -> None:
    iss = params.get("iss")
    if not iss:
        raise HTTPException(400, "The login request does not name the platform (iss).")
    if iss != config.issuer:
        raise HTTPException(
            400, f"Unknown platform {_show(iss)}: this tool only takes launches from {config.issuer}."
        )
    for name in ("login_hint", "target_link_uri"):
        if not params.get(name):
            raise HTTPException(400, f"The login request has no {name}.")
    client_id = params.get("client_id")
    if client_id and client_id != config.client_id:
        raise HTTPException(
            400, f"The login request is for client id {_show(client_id)}, not for this tool's."
        )
    deployment = params.get("lti_deployment_id")
    if deployment and deployment not in config.deployments:
        raise HTTPException(
            400,
            f"Deployment {_show(deployment)} is not accepted by this tool (EBACKPACK_LTI_DEPLOYMENT_IDS).",
        )


@router.api_route("/lti/login", methods=["GET", "POST"])
async def lti_login(request: Request) -> Response:
    """Third-party-initiated login: back to the platform's authorization endpoint with state and nonce."""
    config = _lti_config(request)
    settings = _settings(request)
    params = await _parameters(request)
    _check_login(params, config)
    # Reuse the browser's token, so that two launches started side by side both still work.
    sent = request.cookies.get(_browser_cookie(settings), "")
    browser = sent if BROWSER_TOKEN.fullmatch(sent) else secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    state = _state_serializer(settings).dumps({"nonce": nonce, "browser": _digest(browser)})
    query = {
        "scope": "openid",
        "response_type": "id_token",
        "response_mode": "form_post",
        "prompt": "none",
        "client_id": config.client_id,
        "redirect_uri": f"{settings.public_url.rstrip('/')}/lti/launch",
        "login_hint": params["login_hint"],
        "state": state,
        "nonce": nonce,
    }
    if params.get("lti_message_hint"):
        query["lti_message_hint"] = params["lti_message_hint"]
    separator = "&" if "?" in config.auth_url else "?"
    response = RedirectResponse(f"{config.auth_url}{separator}{urlencode(query)}", status_code=302)
    response.headers.append("set-cookie", _browser_cookie_header(settings, browser))
    return response


@router.post("/lti/launch")
async def lti_launch(request: Request) -> Response:
    """The platform's form post: a signed id_token and our state back. Success -> signed in, 303."""
    config = _lti_config(request)
    settings = _settings(request)
    id_token, state = await _launch_form(request)
    nonce = _check_state(request, settings, state)
    claims = await _verified_launch_token(request, config, id_token)
    _check_token_claims(claims, config, nonce, time.time())
    if not _shared(request, "lti_nonces", lambda: NonceLedger(STATE_SECONDS + LEEWAY)).first_use(nonce):
        raise HTTPException(401, "This launch was already used (replayed nonce). Launch again from Moodle.")
    _check_lti_claims(claims, config)
    user = await _lti_user(request, claims, settings)
    sign_in(request, user)
    return RedirectResponse(_landing(claims, settings), status_code=303)


async def _launch_form(request: Request) -> tuple[str, str]:
    form = await request.form()
    error = form.get("error")
    if isinstance(error, str) and error:
        description = form.get("error_description")
        raise HTTPException(
            401,
            f"The platform refused the launch: {_show(error)}"
            + (f" ({_show(description)})" if isinstance(description, str) else ""),
        )
    id_token, state = form.get("id_token"), form.get("state")
    if not isinstance(id_token, str) or not id_token or not isinstance(state, str) or not state:
        raise HTTPException(400, "The launch must carry the form fields id_token and state.")
    return id_token, state


def _check_state(request: Request, settings: Settings, state: str) -> str:
    """The nonce our login step signed into `state`, once the state is ours, fresh and this browser's."""
    try:
        data = _state_serializer(settings).loads(state, max_age=STATE_SECONDS)
    except SignatureExpired:
        raise HTTPException(
            400, "The launch took longer than 10 minutes. Launch again from Moodle."
        ) from None
    except BadSignature:
        raise HTTPException(400, "The launch state was not issued by this tool.") from None
    browser = request.cookies.get(_browser_cookie(settings))
    if not browser:
        raise HTTPException(
            400,
            "Your browser did not send back the cookie set when the launch started "
            "(it may block third-party cookies in the Moodle frame). Set the tool "
            "to open in a new window, or allow cookies for this site.",
        )
    if not hmac.compare_digest(_digest(browser), str(data.get("browser", ""))):
        raise HTTPException(400, "This launch was started in another browser.")
    return str(data["nonce"])


class PlatformKeys:
    """The platform's public keys (JWKS), fetched with a timeout and kept for a few minutes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._keys: KeySet | None = None
        self._fetched = 0.0

    async def get(self, refresh: bool = False) -> KeySet:
        age = time.monotonic() - self._fetched
        if self._keys is None or age > KEYS_SECONDS or (refresh and age > KEYS_REFETCH_SECONDS):
            self._keys = await self._fetch()
            self._fetched = time.monotonic()
        return self._keys

    async def _fetch(self) -> KeySet:
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
                answer = await client.get(self.url)
                answer.raise_for_status()
                return KeySet.import_key_set(answer.json())
        except (httpx.HTTPError, ValueError, KeyError, TypeError, JoseError) as exc:
            raise HTTPException(
                502, f"The platform's public keys could not be fetched from {self.url}: {_show(exc)}"
            ) from None


async def _verified_launch_token(request: Request, config: LtiConfig, id_token: str) -> dict[str, Any]:
    """The token's claims once its RS256 signature checks against the platform's JWKS."""
    by_url: dict[str, PlatformKeys] = _shared(request, "lti_keys", dict)
    keys = by_url.setdefault(config.jwks_url, PlatformKeys(config.jwks_url))
    try:
        try:
            token = jwt.decode(id_token, await keys.get(), algorithms=LTI_ALGORITHMS)
        except InvalidKeyIdError:  # the platform may have rotated its keys since we fetched them
            token = jwt.decode(id_token, await keys.get(refresh=True), algorithms=LTI_ALGORITHMS)
    except BadSignatureError:
        raise HTTPException(401, "The launch token's signature does not match the platform's keys.") from None
    except InvalidKeyIdError:
        raise HTTPException(
            401, "The launch token is signed with a key the platform does not publish."
        ) from None
    except (UnsupportedAlgorithmError, MissingAlgorithmError):
        raise HTTPException(401, "The launch token must be signed with RS256.") from None
    except (JoseError, ValueError):
        raise HTTPException(400, "The id_token is not a well-formed signed JWT.") from None
    return token.claims


def _time(value: object) -> float | None:
    """A NumericDate claim, or None when it is missing or not a number."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _check_token_claims(claims: Mapping[str, Any], config: LtiConfig, nonce: str, now: float) -> None:
    """OpenID Connect ID token rules (IMS Security Framework 5.1.3)."""
    if claims.get("iss") != config.issuer:
        raise HTTPException(
            401,
            f"The launch token was issued by {_show(claims.get('iss'))}, not by the "
            f"configured platform {config.issuer}.",
        )
    _check_audience(claims, config.client_id)
    exp, iat = _time(claims.get("exp")), _time(claims.get("iat"))
    if exp is None or iat is None:
        raise HTTPException(401, "The launch token lacks valid exp and iat times.")
    if exp < now - LEEWAY:
        raise HTTPException(
            401, f"The launch token expired {int(now - exp)} seconds ago. Launch again from Moodle."
        )
    if iat > now + LEEWAY:
        raise HTTPException(401, "The launch token was issued in the future: check the clocks.")
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
        raise HTTPException(
            401, "The launch token's nonce does not belong to the login this browser started."
        )
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise HTTPException(401, "The launch token names no user (sub).")


def _check_audience(claims: Mapping[str, Any], client_id: str) -> None:
    aud, azp = claims.get("aud"), claims.get("azp")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if client_id not in audiences:
        raise HTTPException(
            401, f"The launch token is meant for {_show(aud)}, not for this tool (client id {client_id})."
        )
    if len(audiences) > 1 and azp is None:
        raise HTTPException(401, "The launch token names several audiences but no authorized party (azp).")
    if azp is not None and azp != client_id:
        raise HTTPException(401, f"The launch token's authorized party (azp) is {_show(azp)}, not this tool.")


def _check_lti_claims(claims: Mapping[str, Any], config: LtiConfig) -> None:
    version = claims.get(LTI + "version")
    if version != "1.3.0":
        raise HTTPException(400, f"LTI version {_show(version)} is not supported: 1.3.0 only.")
    message = claims.get(LTI + "message_type")
    if message != "LtiResourceLinkRequest":
        raise HTTPException(
            400,
            f"Message type {_show(message)} is not supported: only resource link "
            "launches (LtiResourceLinkRequest).",
        )
    deployment = claims.get(LTI + "deployment_id")
    if not isinstance(deployment, str) or deployment not in config.deployments:
        raise HTTPException(
            401,
            f"Deployment {_show(deployment)} is not accepted by this tool (EBACKPACK_LTI_DEPLOYMENT_IDS).",
        )


class NonceLedger:
    """Nonces of accepted launches. In this process only: with several web processes a replay could
    land on another one, but it would also need the victim's state and browser cookie."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, nonce: str) -> bool:
        now = time.monotonic()
        with self._lock:
            for old in [n for n, until in self._seen.items() if until < now]:
                del self._seen[old]
            if nonce in self._seen:
                return False
            self._seen[nonce] = now + self.seconds
            return True


async def _lti_user(request: Request, claims: Mapping[str, Any], settings: Settings) -> User:
    """Moodle's `sub` is its user id, our learner id; other platforms are matched by e-mail."""
    sub: str = claims["sub"]
    raw_email = claims.get("email")
    email = raw_email.strip().lower() if isinstance(raw_email, str) and "@" in raw_email else None

    def find(session: Session) -> Match | None:
        numeric = sub.isascii() and sub.isdigit() and len(sub) < 19  # fits the id column
        match = learner_by_id(session, int(sub)) if numeric else None
        return match or (learner_by_email(session, email) if email else None)

    match = await _lookup(request, find)
    roles = claims.get(LTI + "roles")
    admin = (isinstance(roles, list) and LTI_ADMINISTRATOR in roles) or (email in settings.admins)
    name = str(claims.get("name") or email or "Administrator")
    return person(
        match,
        admin=admin,
        name=name,
        via="LTI 1.3",
        unknown=f"no learner has the Moodle user id {_show(sub)}"
        + (f" or the e-mail address {email}." if email else "."),
    )


def _landing(claims: Mapping[str, Any], settings: Settings) -> str:
    """The target link's path when it points at this site, else the start page."""
    target = claims.get(LTI + "target_link_uri")
    if not isinstance(target, str):
        return "/"
    ours, link = urlsplit(settings.public_url), urlsplit(target)
    if (link.scheme, link.netloc) != (ours.scheme, ours.netloc):
        return "/"
    return local_path((link.path or "/") + (f"?{link.query}" if link.query else ""))
