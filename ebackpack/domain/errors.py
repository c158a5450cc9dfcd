"""The two verdicts domain code gives on a message: it can never be processed (`InvalidMessage`), or it
will work once a dependency answers again (`TransientError`). The stream runtime acts on them
(ebackpack/streaming/policy.py)."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError


class InvalidMessage(Exception):
    """Poison: the bytes can never be processed. Goes to the dead-letter topic at once."""


class TransientError(Exception):
    """Works on a later attempt once a dependency answers again (the consumer pauses meanwhile).
    Not for data that has not arrived yet: such a message is parked (the issuer's parking)."""


M = TypeVar("M", bound=BaseModel)


def parse_message(model: type[M], raw: bytes | None) -> M:
    """Bytes -> event model; anything that does not fit is poison for the dead-letter topic."""
    if raw is None:
        raise InvalidMessage(f"a tombstone (no value) where a {model.__name__} was expected")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidMessage(f"invalid {model.__name__}") from exc
