"""What learners can be told, and on which channels: the vocabulary shared by the notifier (which sends)
and the backpack (where learners choose what they receive), plus the signed one-click unsubscribe token
both sides read. Pure: no database, no network."""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from itsdangerous import BadSignature, URLSafeSerializer

Kind = Literal["issued", "revoked", "expiry"]
Channel = Literal["email", "moodle"]
KINDS: tuple[Kind, ...] = ("issued", "revoked", "expiry")
CHANNELS: tuple[Channel, ...] = ("email", "moodle")

UNSUBSCRIBE_SALT = "ebackpack.unsubscribe"


def _unsubscribe_serializer(code_secret: bytes) -> URLSafeSerializer:
    # A key of its own (like the API tokens and the session cookie): a leaked link reveals nothing else.
    key = hmac.new(code_secret, b"notification unsubscribe links", hashlib.sha256).hexdigest()
    return URLSafeSerializer(key, salt=UNSUBSCRIBE_SALT)


def unsubscribe_token(code_secret: bytes, learner_id: int, kind: str) -> str:
    """Names a learner and a kind of message: whoever holds it may turn those e-mails off (only off).
    It does not expire: an unsubscribe link must work for as long as the e-mail is kept."""
    return _unsubscribe_serializer(code_secret).dumps({"l": learner_id, "k": kind})


def read_unsubscribe_token(code_secret: bytes, token: str) -> tuple[int, Kind]:
    """(learner id, kind) of a token; ValueError when it is not one of ours."""
    try:
        claims = _unsubscribe_serializer(code_secret).loads(token)
    except BadSignature:
        raise ValueError("not a valid unsubscribe link") from None
    learner, kind = (claims.get("l"), claims.get("k")) if isinstance(claims, dict) else (None, None)
    if not isinstance(learner, int) or kind not in KINDS:
        raise ValueError("not a valid unsubscribe link")
    return learner, kind
