"""The issuer's handling of administrators' commands, against a fake service (no database, no broker)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ebackpack.streaming.errors import InvalidMessage
from schemas import (
    CourseRerenderRequested,
    CourseRerenderRequestedMessage,
    CredentialRevokeRequested,
    CredentialRevokeRequestedMessage,
)
from services.issuer.commands import carry_out


@dataclass
class FakeIssuer:
    """Knows some credentials; records what it was asked to do."""

    known: set[str]
    revoked: dict[str, str] = field(default_factory=dict)
    rerendered: list[int] = field(default_factory=list)

    def revoke(self, code: str, reason: str, /) -> object:
        if code not in self.known:
            raise LookupError(f"no credential {code}")
        if not reason.strip():
            raise ValueError("a revocation needs a reason")
        self.revoked.setdefault(code, reason)
        return code

    def rerender(self, course_id: int | None = None) -> int:
        assert course_id is not None
        self.rerendered.append(course_id)
        return 3


def revoke_command(credential_id: str, reason: str = "exam fraud") -> bytes:
    data = CredentialRevokeRequested(credential_id=credential_id, verification_code="CODE", reason=reason)
    return CredentialRevokeRequestedMessage.build(
        id="c1", source="tests", subject=credential_id, data=data
    ).to_bytes()


def test_a_revocation_runs_the_issuers_revoke_and_a_repeat_changes_nothing() -> None:
    issuer = FakeIssuer(known={"cred-1"})
    assert carry_out(issuer, revoke_command("cred-1")) == "credential CODE revoked"
    carry_out(issuer, revoke_command("cred-1", "another reason"))
    assert issuer.revoked == {"cred-1": "exam fraud"}


def test_a_rerender_runs_the_issuers_rerender_for_the_course() -> None:
    issuer = FakeIssuer(known=set())
    command = CourseRerenderRequestedMessage.build(
        id="c2", source="tests", subject="course:42", data=CourseRerenderRequested(course_id=42)
    )
    assert carry_out(issuer, command.to_bytes()) == "3 certificates of course 42 to render again"
    assert issuer.rerendered == [42]


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (revoke_command("no-such-credential"), "no credential no-such-credential"),
        (revoke_command("cred-1", reason=" "), "needs a reason"),
        (b'{"type": "pl.ebackpack.something.else.v1"}', "invalid administrator's command"),
        (b"not json", "invalid administrator's command"),
        (None, "tombstone"),
    ],
)
def test_a_command_that_can_never_work_is_invalid(raw: bytes | None, why: str) -> None:
    issuer = FakeIssuer(known={"cred-1"})
    with pytest.raises(InvalidMessage, match=why):
        carry_out(issuer, raw)
    assert issuer.revoked == {} and issuer.rerendered == []
