"""Administrators' commands on `credentials.commands`, for the issuer to carry out.

A command asks; the issuer decides and announces the outcome on its own topics (a revocation becomes
`credential.revoked.v1` on `credentials`; a re-render becomes render requests). A command naming no
existing credential is invalid and goes to the dead-letter topic.
"""

from __future__ import annotations

from typing import ClassVar, Final

from pydantic import BaseModel, Field

from .envelope import CloudEvent


class CredentialRevokeRequested(BaseModel):
    credential_id: str = Field(description="The credential to revoke (also the message key).")
    verification_code: str
    reason: str = Field(min_length=1, description="Shown on the verification page and in revocation lists.")
    requested_by: str | None = Field(None, description="Who asked (the administrator's account).")


REVOKE_REQUESTED: Final = "pl.ebackpack.credential.revoke.requested.v1"
RERENDER_REQUESTED: Final = "pl.ebackpack.course.rerender.requested.v1"


class CredentialRevokeRequestedMessage(CloudEvent):
    TYPE: ClassVar[str] = REVOKE_REQUESTED
    data: CredentialRevokeRequested


class CourseRerenderRequested(BaseModel):
    course_id: int = Field(description="Every certificate of this course (not revoked) is rendered again.")
    requested_by: str | None = Field(None, description="Who asked (the administrator's account).")


class CourseRerenderRequestedMessage(CloudEvent):
    TYPE: ClassVar[str] = RERENDER_REQUESTED
    data: CourseRerenderRequested


AdminCommand = CredentialRevokeRequestedMessage | CourseRerenderRequestedMessage
