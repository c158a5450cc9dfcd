"""Which learner e-mail addresses the notifier sends to, and what goes into an e-mail's headers."""

from __future__ import annotations

import pytest

from services.notifier.channels import Email, build_email
from services.notifier.domain import InvalidRecipient, one_line, recipient_address


@pytest.mark.parametrize(
    ("address", "sent_to"),
    [
        ("jan.kowalski@example.org", "jan.kowalski@example.org"),
        ("  jan@example.org ", "jan@example.org"),
        ("jan@przykład.pl", "jan@xn--przykad-rjb.pl"),  # the domain in ASCII (IDNA)
        ('"jan kowalski"@example.org', '"jan kowalski"@example.org'),
    ],
)
def test_valid_addresses(address: str, sent_to: str) -> None:
    assert recipient_address(address) == sent_to


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("jan@example.org\r\nBcc: attacker@evil.example", "line break"),
        ("jan@example.org\nBcc: attacker@evil.example", "line break"),
        ("jan@example.org\r", "line break"),
        ("jan@exa\x00mple.org", "control characters"),
        ("jan@example.org\t", "control characters"),
        ("Jan Kowalski <jan@example.org>", "not one valid address"),
        ("jan@example.org, attacker@evil.example", "not one valid address"),
        ("jan kowalski@example.org", "not one valid address"),
        ("łukasz@example.org", "not one valid address"),  # would need SMTPUTF8
        ("@example.org", "not one valid address"),
        ("jan@", "not one valid address"),
        ("x" * 65 + "@example.org", "at most 64"),
        ("jan@" + "a" * 251 + ".pl", "longer than 254"),
    ],
)
def test_invalid_addresses_say_why_without_quoting_the_address(address: str, reason: str) -> None:
    with pytest.raises(InvalidRecipient) as raised:
        recipient_address(address)
    assert reason in str(raised.value)
    assert "attacker" not in str(raised.value) and "jan" not in str(raised.value)


def test_names_and_subjects_stay_on_one_line() -> None:
    assert one_line("Eve\r\nBcc: attacker@evil.example\r\n") == "Eve Bcc: attacker@evil.example"
    message = build_email(
        Email(
            to_name="Eve\r\nBcc: x@evil.example",
            to_address="eve@example.org",
            subject="Badge\r\nX-Injected: yes",
            text="t",
            html="<p>h</p>",
            lang="en",
            message_id="<1@example.org>",
        ),
        "e-Backpack <no-reply@example.org>",
    )
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert message["Subject"] == "Badge X-Injected: yes"
    assert message["To"] == '"Eve Bcc: x@evil.example" <eve@example.org>'
    assert b"\r\nBcc:" not in message.as_bytes() and b"\nBcc:" not in message.as_bytes()
