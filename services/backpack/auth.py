"""Who is asking: a learner, proven by a signed bearer token.

Until login through the platform (OpenID Connect / LTI) exists, tokens come from
`ebackpack learner-token LEARNER_ID`: signed with a key derived from the installation's code secret
(itsdangerous, HMAC-SHA256, with the time of issue) and valid for a limited time. The API takes them as
`Authorization: Bearer <token>`. They are stored nowhere, so one is not revoked alone: the operator
refuses every token issued before a moment with `EBACKPACK_API_TOKENS_NOT_BEFORE`.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ebackpack.adapters.keystore import code_secret_for
from ebackpack.config import Settings

TOKEN_SALT = "ebackpack.learner-token"
DEFAULT_TOKEN_SECONDS = 8 * 3600


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    # A key of its own: a leaked API token reveals nothing about the verification-code secret.
    key = hmac.new(code_secret_for(settings), b"learner api tokens", hashlib.sha256).hexdigest()
    return URLSafeTimedSerializer(key, salt=TOKEN_SALT)


def issue_token(settings: Settings, learner_id: int) -> str:
    return _serializer(settings).dumps({"learner": learner_id})


def learner_of(settings: Settings, token: str, max_age: int = DEFAULT_TOKEN_SECONDS) -> int:
    """The learner id a token names; ValueError with the reason when it is bad or expired."""
    try:
        claims, issued = _serializer(settings).loads(token, max_age=max_age, return_timestamp=True)
    except SignatureExpired:
        raise ValueError("the token has expired") from None
    except BadSignature:
        raise ValueError("the token is not valid") from None
    not_before = settings.api_tokens_not_before
    if not_before is not None and not_before.tzinfo is None:
        not_before = not_before.replace(tzinfo=UTC)  # a time without zone is UTC
    if not_before is not None and issued < not_before:
        raise ValueError("the token was revoked: ask for a new one")
    learner = claims.get("learner") if isinstance(claims, dict) else None
    if not isinstance(learner, int):
        raise ValueError("the token names no learner")
    return learner
