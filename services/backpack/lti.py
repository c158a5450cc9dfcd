"""LTI 1.3 launches from Moodle: the OIDC third-party-initiated login, then the signed launch (see
platform_login.py for who the person becomes).

As an LTI tool the pages are shown inside Moodle, in an iframe: the Content-Security-Policy
`frame-ancestors` of the app must allow the Moodle origin (web.py derives it from `moodle_url`). Mind
the cookies there too: in a cross-site iframe browsers do not send SameSite=Lax cookies, so the
session only works in the frame when Moodle and the backpack are the same site (one registrable
domain, e.g. moodle.uni.example / backpack.uni.example); otherwise set the tool to open in a new
window (then the launch is a top-level navigation and the Lax session cookie is set and sent).

State and nonce across the cross-site launch. Moodle POSTs the launch from its own site, so the
SameSite=Lax session cookie is not sent with it. The login step therefore
 - signs the nonce into `state` (itsdangerous, key derived from the installation's secret, 10 minutes):
   nothing to store, any web process can check it, and nobody can make up a state of their own;
 - binds that state to the browser: `state` carries a hash of a random token that goes into a cookie
   of its own (HttpOnly; on https `__Host-` prefixed, Secure, SameSite=None so the cross-site POST
   carries it, Partitioned so browsers that block third-party cookies keep it in the Moodle frame).
   Without the binding, someone could post their own valid launch into a victim's browser (login CSRF).
   Over plain http (development) the cookie is SameSite=Lax: browsers refuse SameSite=None without
   Secure; Moodle and the tool on one host (localhost, different ports) are the same site anyway.
The launch must come back with the id_token whose nonce is the one in the state, and each nonce is
accepted once: the ledger keeps used nonces as long as their state could still be presented.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
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
from sqlalchemy.orm import Session

from ebackpack.adapters.keystore import code_secret_for
from ebackpack.config import Settings

from .platform_login import (
    HTTP_TIMEOUT,
    LEEWAY,
    Match,
    app_shared,
    find_learner,
    learner_by_email,
    learner_by_id,
    person,
    settings_of,
    shown,
)
from .session import User, local_path, sign_in

router = APIRouter(include_in_schema=False)

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
LTI_ADMINISTRATOR = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator"
LTI_ALGORITHMS = ["RS256"]  # the only one the IMS Security Framework allows for launch tokens
STATE_SECONDS = 600  # from /lti/login to /lti/launch
KEYS_SECONDS = 300  # how long the platform's JWKS is trusted before it is fetched again
KEYS_REFETCH_SECONDS = 30  # an unknown `kid` refetches at most this often (no fetch storms)
STATE_SALT = "ebackpack.lti-login-state"
BROWSER_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class LtiConfig:
    """The one platform this tool takes launches from (EBACKPACK_LTI_*)."""

    issuer: str
    client_id: str
    auth_url: str
    jwks_url: str
    deployments: frozenset[str]


def _lti_config(request: Request) -> LtiConfig:
    settings = settings_of(request)
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
            400, f"Unknown platform {shown(iss)}: this tool only takes launches from {config.issuer}."
        )
    for name in ("login_hint", "target_link_uri"):
        if not params.get(name):
            raise HTTPException(400, f"The login request has no {name}.")
    client_id = params.get("client_id")
    if client_id and client_id != config.client_id:
        raise HTTPException(
            400, f"The login request is for client id {shown(client_id)}, not for this tool's."
        )
    deployment = params.get("lti_deployment_id")
    if deployment and deployment not in config.deployments:
        raise HTTPException(
            400,
            f"Deployment {shown(deployment)} is not accepted by this tool (EBACKPACK_LTI_DEPLOYMENT_IDS).",
        )


@router.api_route("/lti/login", methods=["GET", "POST"])
async def lti_login(request: Request) -> Response:
    """Third-party-initiated login: back to the platform's authorization endpoint with state and nonce."""
    config = _lti_config(request)
    settings = settings_of(request)
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
    settings = settings_of(request)
    id_token, state = await _launch_form(request)
    nonce = _check_state(request, settings, state)
    claims = await _verified_launch_token(request, config, id_token)
    _check_token_claims(claims, config, nonce, time.time())
    if not app_shared(request, "lti_nonces", lambda: NonceLedger(STATE_SECONDS + LEEWAY)).first_use(nonce):
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
            f"The platform refused the launch: {shown(error)}"
            + (f" ({shown(description)})" if isinstance(description, str) else ""),
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
                502, f"The platform's public keys could not be fetched from {self.url}: {shown(exc)}"
            ) from None


async def _verified_launch_token(request: Request, config: LtiConfig, id_token: str) -> dict[str, Any]:
    """The token's claims once its RS256 signature checks against the platform's JWKS."""
    by_url: dict[str, PlatformKeys] = app_shared(request, "lti_keys", dict)
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
            f"The launch token was issued by {shown(claims.get('iss'))}, not by the "
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
            401, f"The launch token is meant for {shown(aud)}, not for this tool (client id {client_id})."
        )
    if len(audiences) > 1 and azp is None:
        raise HTTPException(401, "The launch token names several audiences but no authorized party (azp).")
    if azp is not None and azp != client_id:
        raise HTTPException(401, f"The launch token's authorized party (azp) is {shown(azp)}, not this tool.")


def _check_lti_claims(claims: Mapping[str, Any], config: LtiConfig) -> None:
    version = claims.get(LTI + "version")
    if version != "1.3.0":
        raise HTTPException(400, f"LTI version {shown(version)} is not supported: 1.3.0 only.")
    message = claims.get(LTI + "message_type")
    if message != "LtiResourceLinkRequest":
        raise HTTPException(
            400,
            f"Message type {shown(message)} is not supported: only resource link "
            "launches (LtiResourceLinkRequest).",
        )
    deployment = claims.get(LTI + "deployment_id")
    if not isinstance(deployment, str) or deployment not in config.deployments:
        raise HTTPException(
            401,
            f"Deployment {shown(deployment)} is not accepted by this tool (EBACKPACK_LTI_DEPLOYMENT_IDS).",
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

    match = await find_learner(request, find)
    roles = claims.get(LTI + "roles")
    admin = (isinstance(roles, list) and LTI_ADMINISTRATOR in roles) or (email in settings.admins)
    name = str(claims.get("name") or email or "Administrator")
    return person(
        match,
        admin=admin,
        name=name,
        via="LTI 1.3",
        unknown=f"no learner has the Moodle user id {shown(sub)}"
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
