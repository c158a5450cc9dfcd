"""Login through the platform over real HTTP: a small OpenID provider and LTI 1.3 platform run in this
process on 127.0.0.1 (discovery, JWKS, authorization and token endpoints; tokens signed with joserfc),
the backpack app runs under uvicorn, and httpx plays the browser (cookies included)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from pydantic import SecretStr
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import NoMatchFound

from ebackpack.adapters.persistence.engine import make_engine, migrate, session_factory
from ebackpack.adapters.persistence.tables import Learner
from ebackpack.config import Settings
from services.backpack import lti, oidc
from services.backpack.app import create_app
from services.backpack.session import SESSION_COOKIE, session_secret, signed_in
from tests.conftest import reserve_port

pytestmark = pytest.mark.integration

OIDC_CLIENT, OIDC_SECRET = "backpack", "oidc-client-secret"
LTI_CLIENT, DEPLOYMENT = "lti-backpack-tool", "1"
ADMIN_EMAIL = "boss@example.org"
LTI = lti.LTI
ADMINISTRATOR = lti.LTI_ADMINISTRATOR
LEARNER_ROLE = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"


def _rsa(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


def _sign(claims: dict[str, Any], key: RSAKey) -> str:
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def _drop_none(claims: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in claims.items() if v is not None}


# ------------------------------------------------------------------------------- the platform (fake)


@dataclass
class Platform:
    """The identity provider (/idp) and the Moodle LTI platform (/moodle). Tests steer what it signs:
    who logs in, claim overrides (None removes a claim), the signing key, a tampering step."""

    url: str
    idp_key: RSAKey = field(default_factory=lambda: _rsa("idp-1"))
    lti_key: RSAKey = field(default_factory=lambda: _rsa("moodle-1"))
    person: dict[str, Any] = field(default_factory=dict)
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    id_token_key: RSAKey | None = None
    tamper: bool = False
    launch_overrides: dict[str, Any] = field(default_factory=dict)
    launch_key: RSAKey | None = None
    target_link_uri: str = ""
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    lti_auth_requests: list[dict[str, str]] = field(default_factory=list)
    jwks_fetches: int = 0

    @property
    def idp(self) -> str:
        return f"{self.url}/idp"

    @property
    def moodle(self) -> str:
        return f"{self.url}/moodle"

    def reset(self) -> None:
        self.person = {"sub": "kc-ada", "email": "Ada@Example.org", "email_verified": True, "name": "Ada L."}
        self.id_token_overrides, self.id_token_key, self.tamper = {}, None, False
        self.launch_overrides, self.launch_key = {}, None
        self.authorize_requests.clear()
        self.lti_auth_requests.clear()

    def app(self) -> FastAPI:
        app = FastAPI()
        self._identity_provider(app)
        self._lti_platform(app)
        return app

    # ---- OpenID provider

    def _identity_provider(self, app: FastAPI) -> None:
        @app.get("/idp/.well-known/openid-configuration")
        def discovery() -> dict[str, Any]:
            return {
                "issuer": self.idp,
                "authorization_endpoint": f"{self.idp}/authorize",
                "token_endpoint": f"{self.idp}/token",
                "jwks_uri": f"{self.idp}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }

        @app.get("/idp/jwks")
        def jwks() -> dict[str, Any]:
            return dict(KeySet([self.idp_key]).as_dict(private=False))

        @app.get("/idp/authorize")
        def authorize(request: Request) -> Response:
            """Auto-approves the configured person."""
            params = dict(request.query_params)
            self.authorize_requests.append(params)
            if params.get("client_id") != OIDC_CLIENT or params.get("response_type") != "code":
                return JSONResponse({"error": "unauthorized_client"}, 400)
            code = secrets.token_urlsafe(16)
            self.codes[code] = params
            query = urlencode({"code": code, "state": params["state"]})
            return RedirectResponse(f"{params['redirect_uri']}?{query}", 302)

        @app.post("/idp/token")
        def token(
            request: Request,
            grant_type: str = Form(),
            code: str = Form(),
            redirect_uri: str = Form(),
            code_verifier: str = Form(""),
        ) -> Response:
            asked = self.codes.pop(code, None)  # a code works once
            if not self._client_authenticated(request) or asked is None or grant_type != "authorization_code":
                return JSONResponse({"error": "invalid_grant"}, 400)
            if redirect_uri != asked["redirect_uri"] or not _pkce_matches(code_verifier, asked):
                return JSONResponse({"error": "invalid_grant", "error_description": "PKCE or redirect"}, 400)
            return JSONResponse(
                {
                    "access_token": secrets.token_urlsafe(16),
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "id_token": self._id_token(asked["nonce"]),
                }
            )

    def _client_authenticated(self, request: Request) -> bool:
        expected = base64.b64encode(f"{OIDC_CLIENT}:{OIDC_SECRET}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    def _id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims = _drop_none(
            {
                "iss": self.idp,
                "aud": OIDC_CLIENT,
                "iat": now,
                "exp": now + 300,
                "nonce": nonce,
                **self.person,
                **self.id_token_overrides,
            }
        )
        signed = _sign(claims, self.id_token_key or self.idp_key)
        if self.tamper:  # a signed token whose payload was changed afterwards
            header, _, signature = signed.split(".")
            forged = base64.urlsafe_b64encode(json.dumps({**claims, "email": ADMIN_EMAIL}).encode())
            signed = ".".join([header, forged.decode().rstrip("="), signature])
        return signed

    # ---- LTI 1.3 platform

    def _lti_platform(self, app: FastAPI) -> None:
        @app.get("/moodle/mod/lti/certs.php")
        def certs() -> dict[str, Any]:
            self.jwks_fetches += 1
            return dict(KeySet([self.lti_key]).as_dict(private=False))

        @app.get("/moodle/mod/lti/auth.php")
        def auth(request: Request) -> Response:
            """Answers like Moodle: an HTML page that auto-posts id_token and state to the tool."""
            params = dict(request.query_params)
            self.lti_auth_requests.append(params)
            id_token = _sign(self._launch_claims(params), self.launch_key or self.lti_key)
            return HTMLResponse(
                f'<form id="launch" method="post" action="{params["redirect_uri"]}">'
                f'<input type="hidden" name="id_token" value="{id_token}">'
                f'<input type="hidden" name="state" value="{params["state"]}"></form>'
                "<script>document.getElementById('launch').submit();</script>"
            )

    def _launch_claims(self, params: dict[str, str]) -> dict[str, Any]:
        now = int(time.time())
        return _drop_none(
            {
                "iss": self.moodle,
                "aud": params["client_id"],
                "sub": params["login_hint"],
                "iat": now,
                "exp": now + 60,
                "nonce": params["nonce"],
                "name": "Launching Person",
                LTI + "version": "1.3.0",
                LTI + "message_type": "LtiResourceLinkRequest",
                LTI + "deployment_id": DEPLOYMENT,
                LTI + "roles": [LEARNER_ROLE],
                LTI + "resource_link": {"id": "42"},
                LTI + "target_link_uri": self.target_link_uri,
                **self.launch_overrides,
            }
        )


def _pkce_matches(verifier: str, request: dict[str, str]) -> bool:
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return request.get("code_challenge_method") == "S256" and request.get("code_challenge") == digest


class _FormReader(HTMLParser):
    """The auto-posting form of the platform's answer: what a browser would submit."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = values["action"]
        elif tag == "input":
            self.fields[values["name"]] = values["value"]


def read_form(html: str) -> _FormReader:
    reader = _FormReader()
    reader.feed(html)
    return reader


# ------------------------------------------------------------------------------------------- servers


@contextmanager
def serve(app: FastAPI, sock: socket.socket) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("web server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def whoami(request: Request) -> dict[str, Any] | None:
    user = signed_in(request)
    return asdict(user) if user else None


def backpack_app(settings: Settings) -> FastAPI:
    """The real app; while app.py does not yet wire the session and this router in, a bare one."""
    app = create_app(settings)
    try:
        app.url_path_for("lti_launch")
        wired = any(m.cls is SessionMiddleware for m in app.user_middleware)
    except NoMatchFound:
        wired = False
    if not wired:
        app = FastAPI()
        app.state.settings = settings
        app.state.sessions = session_factory(make_engine(settings.db_url))
        app.include_router(oidc.router)
        app.include_router(lti.router)
        app.add_middleware(
            SessionMiddleware,
            secret_key=session_secret(settings),
            session_cookie=SESSION_COOKIE,
            same_site="lax",
        )
    app.add_api_route("/whoami", whoami)
    return app


def backpack_settings(folder: Path, port: int, platform: Platform | None) -> Settings:
    settings = Settings(
        data_dir=folder,
        embedded=False,
        dev_login=False,
        database_url=f"sqlite:///{folder / 'ebackpack.db'}",
        public_url=f"http://127.0.0.1:{port}",
        http_port=port,
        admin_emails=ADMIN_EMAIL,
    )
    if platform is None:
        return settings
    return settings.model_copy(
        update={
            "moodle_url": platform.moodle,
            "oidc_issuer": platform.idp,
            "oidc_client_id": OIDC_CLIENT,
            "oidc_client_secret": SecretStr(OIDC_SECRET),
            "lti_issuer": platform.moodle,
            "lti_client_id": LTI_CLIENT,
            "lti_auth_url": f"{platform.moodle}/mod/lti/auth.php",
            "lti_jwks_url": f"{platform.moodle}/mod/lti/certs.php",
            "lti_deployment_ids": f"{DEPLOYMENT}, 9",
        }
    )


def store_learners(settings: Settings) -> None:
    migrate(settings.db_url)
    with session_factory(make_engine(settings.db_url)).begin() as session:
        session.add_all(
            [
                Learner(id=7, firstname="Ada", lastname="Lovelace", email="ada@example.org"),
                Learner(id=8, firstname="Alan", lastname="Turing", email="alan@example.org"),
            ]
        )


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    sock = reserve_port()
    platform = Platform(f"http://127.0.0.1:{sock.getsockname()[1]}")
    with serve(platform.app(), sock):
        yield platform
    sock.close()


@pytest.fixture(scope="module")
def backpack(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    sock = reserve_port()
    settings = backpack_settings(tmp_path_factory.mktemp("backpack"), sock.getsockname()[1], platform)
    store_learners(settings)
    with serve(backpack_app(settings), sock) as url:
        yield url
    sock.close()


@pytest.fixture(autouse=True)
def steady_platform(platform: Platform, backpack: str) -> None:
    platform.reset()
    platform.target_link_uri = f"{backpack}/"


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=15) as client:
        yield client


def me(browser: httpx.Client, backpack: str) -> dict[str, Any] | None:
    answer: dict[str, Any] | None = browser.get(f"{backpack}/whoami").json()
    return answer


# ------------------------------------------------------------------------------------- OpenID Connect


def oidc_login(browser: httpx.Client, backpack: str, next_path: str = "/") -> httpx.Response:
    """Login page -> provider (auto-approves) -> our callback; the callback's answer."""
    start = browser.get(f"{backpack}/login/oidc", params={"next": next_path})
    assert start.status_code == 302, start.text
    approved = browser.get(start.headers["location"])
    assert approved.status_code == 302, approved.text
    assert approved.headers["location"].startswith(f"{backpack}/auth/oidc/callback?")
    return browser.get(approved.headers["location"])


def test_oidc_login_signs_in_the_learner_with_that_email(
    browser: httpx.Client, backpack: str, platform: Platform
) -> None:
    answer = oidc_login(browser, backpack, "/certificates")
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/certificates"
    assert me(browser, backpack) == {
        "learner_id": 7,
        "role": "learner",
        "name": "Ada Lovelace",
        "via": "OpenID Connect",
    }
    asked = platform.authorize_requests[-1]
    assert asked["scope"] == "openid email profile" and asked["code_challenge_method"] == "S256"
    assert asked["redirect_uri"] == f"{backpack}/auth/oidc/callback" and asked["nonce"]


def test_oidc_admin_email_gets_the_admin_role(
    browser: httpx.Client, backpack: str, platform: Platform
) -> None:
    platform.person = {"sub": "kc-boss", "email": "Boss@Example.org", "email_verified": True, "name": "Boss"}
    assert oidc_login(browser, backpack).status_code == 303
    assert me(browser, backpack) == {
        "learner_id": None,
        "role": "admin",
        "name": "Boss",
        "via": "OpenID Connect",
    }


@pytest.mark.parametrize(
    "person",
    [
        {"sub": "kc-x", "email": "nobody@example.org", "email_verified": True},
        {"sub": "kc-y", "email": "ada@example.org", "email_verified": False},
        {"sub": "kc-z"},
    ],
    ids=["unknown-email", "unverified-email", "no-email"],
)
def test_oidc_without_a_backpack_is_refused(
    browser: httpx.Client, backpack: str, platform: Platform, person: dict[str, Any]
) -> None:
    platform.person = person
    answer = oidc_login(browser, backpack)
    assert answer.status_code == 403
    assert "backpack" in answer.text
    assert me(browser, backpack) is None


def test_oidc_unknown_email_says_there_is_no_backpack(
    browser: httpx.Client, backpack: str, platform: Platform
) -> None:
    platform.person = {"sub": "kc-x", "email": "nobody@example.org", "email_verified": True}
    assert "This account has no backpack here" in oidc_login(browser, backpack).text


@pytest.mark.parametrize(
    "attack",
    [
        "other-key-same-kid",
        "other-key-other-kid",
        "tampered-payload",
        "wrong-audience",
        "wrong-nonce",
        "wrong-issuer",
        "expired",
    ],
)
def test_oidc_forged_or_foreign_id_tokens_are_refused(
    browser: httpx.Client, backpack: str, platform: Platform, attack: str
) -> None:
    platform.person = {"sub": "kc-boss", "email": ADMIN_EMAIL, "email_verified": True}
    if attack == "other-key-same-kid":
        platform.id_token_key = _rsa("idp-1")
    elif attack == "other-key-other-kid":
        platform.id_token_key = _rsa("attacker")
    elif attack == "tampered-payload":
        platform.person = {"sub": "kc-ada", "email": "ada@example.org", "email_verified": True}
        platform.tamper = True  # the payload then claims the admin's e-mail
    elif attack == "wrong-audience":
        platform.id_token_overrides = {"aud": "another-client", "azp": OIDC_CLIENT}
    elif attack == "wrong-nonce":
        platform.id_token_overrides = {"nonce": "replayed-from-elsewhere"}
    elif attack == "wrong-issuer":
        platform.id_token_overrides = {"iss": "https://idp.attacker.example"}
    else:
        platform.id_token_overrides = {"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}
    answer = oidc_login(browser, backpack)
    assert answer.status_code == 401, answer.text
    assert "ID token" in answer.text
    assert me(browser, backpack) is None


@pytest.mark.parametrize(
    "next_path", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "certificates"]
)
def test_oidc_next_must_be_a_local_path(browser: httpx.Client, backpack: str, next_path: str) -> None:
    answer = oidc_login(browser, backpack, next_path)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"


def test_oidc_callback_of_a_login_not_started_here_is_refused(
    browser: httpx.Client, backpack: str, platform: Platform
) -> None:
    other = httpx.Client(timeout=15)
    with other:
        start = other.get(f"{backpack}/login/oidc")
        approved = other.get(start.headers["location"])
    answer = browser.get(approved.headers["location"])  # the code lands in another browser
    assert answer.status_code == 400
    assert "not started in this browser" in answer.text
    assert me(browser, backpack) is None


# --------------------------------------------------------------------------------------------- LTI 1.3


def lti_start(
    browser: httpx.Client,
    backpack: str,
    platform: Platform,
    login_hint: str = "7",
    method: str = "POST",
    **extra: str,
) -> _FormReader:
    """Moodle's login initiation -> our redirect -> Moodle's auto-post page: the form to submit."""
    params = {
        "iss": platform.moodle,
        "login_hint": login_hint,
        "target_link_uri": f"{backpack}/",
        "lti_message_hint": '{"cmid":3,"launchid":"ltilaunch_1"}',
        "client_id": LTI_CLIENT,
        "lti_deployment_id": DEPLOYMENT,
        **extra,
    }
    if method == "POST":
        start = browser.post(f"{backpack}/lti/login", data=params)
    else:
        start = browser.get(f"{backpack}/lti/login", params=params)
    assert start.status_code == 302, start.text
    assert start.headers["location"].startswith(f"{platform.moodle}/mod/lti/auth.php?")
    page = browser.get(start.headers["location"])
    assert page.status_code == 200, page.text
    return read_form(page.text)


def lti_launch(
    browser: httpx.Client, backpack: str, platform: Platform, login_hint: str = "7", **extra: str
) -> httpx.Response:
    form = lti_start(browser, backpack, platform, login_hint, **extra)
    return browser.post(form.action, data=form.fields)


def test_lti_launch_signs_in_the_learner_named_by_sub(
    browser: httpx.Client, backpack: str, platform: Platform
) -> None:
    answer = lti_launch(browser, backpack, platform)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/"
    assert me(browser, backpack) == {
        "learner_id": 7,
        "role": "learner",
        "name": "Ada Lovelace",
        "via": "LTI 1.3",
    }
    asked = platform.lti_auth_requests[-1]
    assert {
        k: asked[k]
        for k in (
            "scope",
            "response_type",
            "response_mode",
            "prompt",
            "client_id",
            "redirect_uri",
            "login_hint",
            "lti_message_hint",
        )
    } == {
        "scope": "openid",
        "response_type": "id_token",
        "response_mode": "form_post",
        "prompt": "none",
        "client_id": LTI_CLIENT,
        "redirect_uri": f"{backpack}/lti/launch",
        "login_hint": "7",
        "lti_message_hint": '{"cmid":3,"launchid":"ltilaunch_1"}',
    }
    assert asked["state"] and asked["nonce"] and asked["nonce"] not in asked["state"]


def test_lti_login_by_get_and_landing_on_the_target_link(
    browser: httpx.Client, backpack: str, platform: Platform
) -> None:
    platform.target_link_uri = f"{backpack}/badges?view=all"
    form = lti_start(browser, backpack, platform, "8", method="GET")
    answer = browser.post(form.action, data=form.fields)
    assert answer.status_code == 303 and answer.headers["location"] == "/badges?view=all"
    assert me(browser, backpack)["learner_id"] == 8  # type: ignore[index]


def test_lti_target_link_elsewhere_lands_on_the_start_page(
    browser: httpx.Client, backpack: str, platform: Platform
) -> None:
    platform.target_link_uri = "https://evil.example/badges"
    answer = lti_launch(browser, backpack, platform)
    assert answer.status_code == 303 and answer.headers["location"] == "/"


def test_lti_administrator_role_gets_the_admin_role(
    browser: httpx.Client, backpack: str, platform: Platform
) -> None:
    platform.launch_overrides = {LTI + "roles": [ADMINISTRATOR]}
    assert lti_launch(browser, backpack, platform).status_code == 303
    assert me(browser, backpack) == {
        "learner_id": 7,
        "role": "admin",
        "name": "Ada Lovelace",
        "via": "LTI 1.3",
    }


def test_lti_admin_without_a_backpack(browser: httpx.Client, backpack: str, platform: Platform) -> None:
    platform.launch_overrides = {"email": ADMIN_EMAIL, "name": "Site Boss"}
    assert lti_launch(browser, backpack, platform, login_hint="2").status_code == 303
    assert me(browser, backpack) == {
        "learner_id": None,
        "role": "admin",
        "name": "Site Boss",
        "via": "LTI 1.3",
    }


def test_lti_unknown_sub_is_matched_by_email(
    browser: httpx.Client, backpack: str, platform: Platform
) -> None:
    platform.launch_overrides = {"email": "ALAN@example.org"}
    assert lti_launch(browser, backpack, platform, login_hint="not-a-number").status_code == 303
    assert me(browser, backpack)["learner_id"] == 8  # type: ignore[index]


def test_lti_person_without_a_backpack_is_refused(
    browser: httpx.Client, backpack: str, platform: Platform
) -> None:
    platform.launch_overrides = {"email": "nobody@example.org"}
    answer = lti_launch(browser, backpack, platform, login_hint="99")
    assert answer.status_code == 403
    assert "This account has no backpack here" in answer.text
    assert me(browser, backpack) is None


def test_lti_platform_keys_are_cached(browser: httpx.Client, backpack: str, platform: Platform) -> None:
    assert lti_launch(browser, backpack, platform).status_code == 303
    fetched = platform.jwks_fetches
    assert lti_launch(browser, backpack, platform).status_code == 303
    assert platform.jwks_fetches == fetched


def test_lti_replayed_launch_is_refused(browser: httpx.Client, backpack: str, platform: Platform) -> None:
    form = lti_start(browser, backpack, platform)
    assert browser.post(form.action, data=form.fields).status_code == 303
    browser.cookies.delete(SESSION_COOKIE)
    replay = browser.post(form.action, data=form.fields)
    assert replay.status_code == 401
    assert "already used" in replay.text
    assert me(browser, backpack) is None


@pytest.mark.parametrize(
    ("overrides", "status", "reason"),
    [
        ({LTI + "deployment_id": "2"}, 401, "Deployment 2 is not accepted"),
        ({"aud": "another-tool"}, 401, "meant for another-tool"),
        ({"aud": [LTI_CLIENT, "another-tool"]}, 401, "no authorized party"),
        ({"aud": [LTI_CLIENT, "another-tool"], "azp": "another-tool"}, 401, "authorized party (azp) is"),
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, 401, "expired"),
        ({"iat": int(time.time()) + 3600}, 401, "issued in the future"),
        ({"iss": "https://moodle.attacker.example"}, 401, "not by the configured platform"),
        ({"nonce": "some-other-nonce"}, 401, "nonce does not belong"),
        ({"exp": None}, 401, "lacks valid exp and iat"),
        ({LTI + "message_type": "LtiDeepLinkingRequest"}, 400, "only resource link launches"),
        ({LTI + "version": "1.1"}, 400, "1.3.0 only"),
    ],
    ids=[
        "deployment",
        "audience",
        "several-audiences",
        "azp",
        "expired",
        "future",
        "issuer",
        "nonce",
        "no-exp",
        "message-type",
        "version",
    ],
)
def test_lti_launch_claims_are_checked(
    browser: httpx.Client,
    backpack: str,
    platform: Platform,
    overrides: dict[str, Any],
    status: int,
    reason: str,
) -> None:
    platform.launch_overrides = overrides
    answer = lti_launch(browser, backpack, platform)
    assert answer.status_code == status, answer.text
    assert reason in answer.text
    assert me(browser, backpack) is None


@pytest.mark.parametrize(
    ("kid", "reason"),
    [("moodle-1", "signature does not match"), ("attacker-1", "key the platform does not publish")],
)
def test_lti_token_signed_by_another_key_is_refused(
    browser: httpx.Client, backpack: str, platform: Platform, kid: str, reason: str
) -> None:
    platform.launch_key = _rsa(kid)
    answer = lti_launch(browser, backpack, platform)
    assert answer.status_code == 401
    assert reason in answer.text
    assert me(browser, backpack) is None


def test_lti_token_with_another_algorithm_is_refused(
    browser: httpx.Client, backpack: str, platform: Platform
) -> None:
    form = lti_start(browser, backpack, platform)
    _, payload, _ = form.fields["id_token"].split(".")
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=")
    answer = browser.post(form.action, data={**form.fields, "id_token": f"{unsigned}.{payload}."})
    assert answer.status_code == 401
    assert "must be signed with RS256" in answer.text
    garbage = browser.post(form.action, data={**form.fields, "id_token": "not-a-jwt"})
    assert garbage.status_code == 400
    assert "not a well-formed signed JWT" in garbage.text
    assert me(browser, backpack) is None


def test_lti_launch_in_another_browser_is_refused(
    browser: httpx.Client, backpack: str, platform: Platform
) -> None:
    """Login CSRF: someone's own valid launch posted from a victim's browser."""
    form = lti_start(browser, backpack, platform)
    with httpx.Client(timeout=15) as victim:
        answer = victim.post(form.action, data=form.fields)
        assert answer.status_code == 400
        assert "did not send back the cookie" in answer.text
        victim.get(
            f"{backpack}/lti/login",
            params={"iss": platform.moodle, "login_hint": "8", "target_link_uri": f"{backpack}/"},
        )
        answer = victim.post(form.action, data=form.fields)  # with a browser cookie of its own
        assert answer.status_code == 400
        assert "started in another browser" in answer.text
        assert me(victim, backpack) is None


def test_lti_made_up_state_is_refused(browser: httpx.Client, backpack: str, platform: Platform) -> None:
    form = lti_start(browser, backpack, platform)
    answer = browser.post(form.action, data={**form.fields, "state": form.fields["state"][:-2] + "xx"})
    assert answer.status_code == 400
    assert "not issued by this tool" in answer.text
    missing = browser.post(form.action, data={"id_token": form.fields["id_token"]})
    assert missing.status_code == 400


def test_lti_platform_error_is_shown(browser: httpx.Client, backpack: str) -> None:
    answer = browser.post(f"{backpack}/lti/launch", data={"error": "login_required", "state": "x"})
    assert answer.status_code == 401
    assert "login_required" in answer.text


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"iss": "https://moodle.attacker.example"}, "Unknown platform"),
        ({"client_id": "another-tool"}, "not for this tool"),
        ({"lti_deployment_id": "5"}, "Deployment 5 is not accepted"),
        ({"login_hint": ""}, "no login_hint"),
    ],
)
def test_lti_login_request_is_checked(
    browser: httpx.Client, backpack: str, platform: Platform, change: dict[str, str], reason: str
) -> None:
    params = {
        "iss": platform.moodle,
        "login_hint": "7",
        "target_link_uri": f"{backpack}/",
        "client_id": LTI_CLIENT,
        **change,
    }
    answer = browser.post(f"{backpack}/lti/login", data=params)
    assert answer.status_code == 400
    assert reason in answer.text


def test_lti_browser_cookie_is_cross_site_on_https(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, public_url="https://backpack.example.org")
    header = lti._browser_cookie_header(settings, "t" * 43)
    assert header.startswith("__Host-ebackpack_lti=")
    assert all(flag in header for flag in ("Secure", "SameSite=None", "Partitioned", "HttpOnly", "Path=/"))
    assert "SameSite=Lax" in lti._browser_cookie_header(
        settings.model_copy(update={"public_url": "http://127.0.0.1:8000"}), "t" * 43
    )


# ------------------------------------------------------------------------------------ not configured


def test_routes_answer_404_when_not_configured(tmp_path: Path) -> None:
    sock = reserve_port()
    settings = backpack_settings(tmp_path, sock.getsockname()[1], None)
    store_learners(settings)
    with serve(backpack_app(settings), sock) as url, httpx.Client(timeout=15) as client:
        assert client.get(f"{url}/login/oidc").status_code == 404
        assert client.get(f"{url}/auth/oidc/callback", params={"code": "c", "state": "s"}).status_code == 404
        assert client.get(f"{url}/lti/login").status_code == 404
        assert client.post(f"{url}/lti/login", data={"iss": "x"}).status_code == 404
        assert client.post(f"{url}/lti/launch", data={"id_token": "t", "state": "s"}).status_code == 404
    sock.close()


def test_oidc_redirect_keeps_to_the_registered_callback(browser: httpx.Client, backpack: str) -> None:
    start = browser.get(f"{backpack}/login/oidc", params={"next": "/x"})
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["redirect_uri"] == [f"{backpack}/auth/oidc/callback"]
    assert query["response_type"] == ["code"] and query["client_id"] == [OIDC_CLIENT]
