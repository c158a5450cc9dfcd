"""The error classes every consumer understands. The dead-letter policy decides on them alone."""

from __future__ import annotations

from typing import TypeVar

import sqlalchemy.exc
from aiokafka.errors import KafkaError
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ValidationError


class InvalidMessage(Exception):
    """Poison: the bytes can never be processed. Goes to the dead-letter topic at once."""


class TransientError(Exception):
    """Might work on a later attempt (a dependency is down, data not there yet)."""


TRANSIENT: tuple[type[BaseException], ...] = (
    TransientError, ConnectionError, TimeoutError, sqlalchemy.exc.OperationalError, BotoCoreError,
    KafkaError,  # e.g. a send not acknowledged in time: the award is saved, the announcement is retried
)


M = TypeVar("M", bound=BaseModel)


def parse_message(model: type[M], raw: bytes) -> M:
    """Bytes -> event model; anything that does not fit is poison for the dead-letter topic."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidMessage(f"invalid {model.__name__}") from exc


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
        return int(status) >= 500
    return isinstance(exc, TRANSIENT)


def describe(exc: BaseException) -> str:
    """A readable one-paragraph reason for a dead letter."""
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(message)'}: {e['msg']}" for e in exc.errors()[:5]
        )
        return f"invalid {exc.title}: {problems}"
    if isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, ValidationError):
        return describe(exc.__cause__)  # says "invalid <Model>: field: problem; ..." already
    if isinstance(exc, InvalidMessage) and exc.__cause__ is not None:
        return f"{exc}: {describe(exc.__cause__)}"
    return str(exc) or type(exc).__name__
