"""Login through the platform with OpenID Connect (authorization code + PKCE): the person is the learner
with the verified e-mail address the identity provider vouches for (see platform_login.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.starlette_client import OAuth
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from joserfc.errors import JoseError

from ebackpack.config import Settings

from .platform_login import (
    HTTP_TIMEOUT,
    LEEWAY,
    app_shared,
    find_learner,
    learner_by_email,
    person,
    settings_of,
    shown,
)
from .session import local_path, sign_in

router = APIRouter(include_in_schema=False)

OIDC_CLIENT = "platform"
OIDC_NEXT = "oidc_next"  # session key: where to go after the provider sends the person back


def _oidc_client(request: Request) -> Any:
    settings = settings_of(request)
    if not settings.oidc_issuer:
        raise HTTPException(404, "OpenID Connect login is not set up here")
    if not settings.oidc_client_id or settings.oidc_client_secret is None:
        raise HTTPException(
            503,
            "OpenID Connect login is not fully configured: set "
            "EBACKPACK_OIDC_CLIENT_ID and EBACKPACK_OIDC_CLIENT_SECRET",
        )
    return app_shared(request, "oidc_client", lambda: _register_oidc(settings))


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
    settings = settings_of(request)
    request.session[OIDC_NEXT] = local_path(next)
    try:
        redirect: Response = await client.authorize_redirect(
            request, f"{settings.public_url.rstrip('/')}/auth/oidc/callback"
        )
    except (httpx.HTTPError, ValueError) as exc:
        raise HTTPException(502, f"The identity provider could not be reached: {shown(exc)}") from None
    return redirect


@router.get("/auth/oidc/callback")
async def oidc_callback(request: Request) -> Response:
    client = _oidc_client(request)
    settings = settings_of(request)
    claims = await _oidc_id_token(request, client, settings)
    email = _verified_email(claims)
    match = await find_learner(request, lambda session: learner_by_email(session, email))
    user = person(
        match,
        admin=email in settings.admins,
        name=str(claims.get("name") or email),
        via="OpenID Connect",
        unknown=f"no learner has the e-mail address {shown(email)}.",
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
        raise HTTPException(401, f"The identity provider refused the login: {shown(exc)}") from None
    except JoseError as exc:
        raise HTTPException(
            401,
            "The ID token from the identity provider failed verification "
            f"({exc.error}: {shown(exc.description)}).",
        ) from None
    except (httpx.HTTPError, ValueError) as exc:
        raise HTTPException(502, f"The identity provider could not be reached: {shown(exc)}") from None
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
