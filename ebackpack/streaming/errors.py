"""The error classes every consumer understands, and which library errors mean "a dependency is down".
The dead-letter policy decides on them alone. The two message verdicts themselves are pure
(ebackpack/domain/errors.py) so that domain code can raise them."""

from __future__ import annotations

import aiokafka.errors
import botocore.exceptions
import kafka.errors
import psycopg
import sqlalchemy.exc
from botocore.exceptions import ClientError
from pydantic import ValidationError

from ebackpack.domain.errors import InvalidMessage, TransientError, parse_message

__all__ = ["InvalidMessage", "TransientError", "describe", "is_transient", "parse_message"]


# A dependency is down or did not answer: the same message will work once it is back.
TRANSIENT: tuple[type[BaseException], ...] = (
    TransientError,
    ConnectionError,
    TimeoutError,  # OSError kinds: refused, reset, aborted, timed out
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,  # server gone, connection lost
    psycopg.OperationalError,
    psycopg.InterfaceError,  # the same, from psycopg used without SQLAlchemy
    botocore.exceptions.ConnectionError,  # endpoint unreachable, connect timeout, connection closed
    botocore.exceptions.HTTPClientError,  # read timeout, connection dropped mid-answer
    aiokafka.errors.KafkaError,
    kafka.errors.KafkaError,  # broker away, send not acknowledged in time
)
# ... except these, which the same message meets on every attempt: not an outage.
NEVER_WORKS: tuple[type[BaseException], ...] = (
    aiokafka.errors.MessageSizeTooLargeError,
    aiokafka.errors.InvalidTopicError,
    kafka.errors.MessageSizeTooLargeError,
    kafka.errors.InvalidTopicError,
)


def is_transient(exc: BaseException) -> bool:
    """True when the failure says a dependency is down, not that the message is wrong."""
    if isinstance(exc, ClientError):  # S3 answered: 5xx and throttling are its outage, 4xx our request
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500))
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return status >= 500 or status == 429 or code in ("SlowDown", "RequestTimeout", "ServiceUnavailable")
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True  # the pool saw the connection die, whatever the driver called it
    return isinstance(exc, TRANSIENT) and not isinstance(exc, NEVER_WORKS)


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
