"""Administrators' commands (`credentials.commands`, published by the backpack's admin pages), carried
out by the issuer's service layer: the issuer alone writes awards and announces what became of them."""

from __future__ import annotations

import logging
from typing import Annotated, Protocol

from pydantic import Field, TypeAdapter, ValidationError

from ebackpack.streaming.errors import InvalidMessage
from schemas import AdminCommand, CourseRerenderRequestedMessage, CredentialRevokeRequestedMessage

log = logging.getLogger(__name__)
_COMMANDS: TypeAdapter[AdminCommand] = TypeAdapter(Annotated[AdminCommand, Field(discriminator="type")])


class CommandTarget(Protocol):
    """What a command needs of the issuer's service (IssuerService)."""

    def revoke(self, code: str, reason: str, /) -> object: ...

    def rerender(self, course_id: int | None = None) -> int: ...


def parse_command(raw: bytes | None) -> AdminCommand:
    if raw is None:
        raise InvalidMessage("a tombstone (no value) where an administrator's command was expected")
    try:
        return _COMMANDS.validate_json(raw)
    except ValidationError as exc:
        raise InvalidMessage("invalid administrator's command") from exc


def carry_out(service: CommandTarget, raw: bytes | None) -> str:
    """Runs one command; returns what was done, for the log. Raises InvalidMessage for a command that can
    never work (malformed, or naming no existing credential): the stream policy dead-letters it.

    Redelivery is harmless: revoking a revoked credential changes nothing (the first reason stands), and a
    re-render that gives the same PDF stores no new version."""
    command = parse_command(raw)
    if isinstance(command, CredentialRevokeRequestedMessage):
        data = command.data
        try:
            service.revoke(data.credential_id, data.reason)
        except LookupError as exc:
            raise InvalidMessage(f"no credential {data.credential_id} ({data.verification_code})") from exc
        except ValueError as exc:  # a blank reason
            raise InvalidMessage(str(exc)) from exc
        return f"credential {data.verification_code} revoked"
    assert isinstance(command, CourseRerenderRequestedMessage)
    queued = service.rerender(course_id=command.data.course_id)
    return f"{queued} certificates of course {command.data.course_id} to render again"
