"""The webhook's signature: HMAC-SHA256(secret, "<timestamp>.<raw body>") as `sha256=<hex>`, what the
Moodle plugin computes with `hash_hmac('sha256', "$timestamp.$body", $secret)`."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from services.gateway.webhook import WebhookRefused, sign, verify_signature

SECRET = "correct horse battery staple"
NOW = 1_763_985_600
BODY = b'{"site": "moodle.example.org", "events": []}'


def refused(
    secret: str | None = SECRET,
    timestamp: str | None = str(NOW),
    body: bytes = BODY,
    header: str | None = None,
    now: float = NOW,
    window: int = 300,
) -> WebhookRefused:
    if header is None:
        header = sign(SECRET, NOW, BODY)
    with pytest.raises(WebhookRefused) as caught:
        verify_signature(secret, timestamp, body, header, now, window)
    return caught.value


def test_sign_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == f"sha256={expected}"
    assert sign(SECRET, str(NOW), BODY) == sign(SECRET.encode(), NOW, BODY)


def test_a_known_vector() -> None:
    # hash_hmac('sha256', '1763985600.{}', 'key') in PHP, computed here with the standard library.
    digest = hmac.new(b"key", b"1763985600.{}", hashlib.sha256).hexdigest()
    assert sign("key", 1763985600, b"{}") == "sha256=" + digest
    assert len(digest) == 64


def test_a_correct_signature_passes_within_the_window() -> None:
    header = sign(SECRET, NOW, BODY)
    verify_signature(SECRET, str(NOW), BODY, header, NOW, 300)
    verify_signature(SECRET, str(NOW), BODY, header, NOW + 300, 300)  # the window's edges count
    verify_signature(SECRET, str(NOW), BODY, header, NOW - 300, 300)
    verify_signature(SECRET, str(NOW), BODY, header.upper().replace("SHA256=", "sha256="), NOW, 300)


def test_a_secret_with_non_ascii_characters_is_utf8() -> None:
    secret = "zażółć gęślą jaźń"
    expected = hmac.new(secret.encode("utf-8"), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(secret, NOW, BODY) == f"sha256={expected}"
    verify_signature(secret, str(NOW), BODY, f"sha256={expected}", NOW, 300)


def test_wrong_secret_changed_body_or_timestamp_do_not_match() -> None:
    assert "does not match" in refused(header=sign("another secret", NOW, BODY)).reason
    assert "does not match" in refused(body=BODY + b" ").reason
    assert "does not match" in refused(timestamp=str(NOW + 1)).reason
    flipped = sign(SECRET, NOW, BODY)[:-1] + ("0" if sign(SECRET, NOW, BODY)[-1] != "0" else "1")
    problem = refused(header=flipped)
    assert (problem.status, "does not match" in problem.reason) == (401, True)


def test_stale_and_future_timestamps() -> None:
    old = refused(now=NOW + 301)
    assert old.status == 401 and old.reason.startswith("stale timestamp") and "behind" in old.reason
    future = refused(now=NOW - 301)
    assert future.status == 401 and future.reason.startswith("stale timestamp") and "ahead" in future.reason


def test_missing_and_malformed_headers() -> None:
    assert "missing X-Ebackpack-Timestamp" in refused(timestamp=None).reason
    with pytest.raises(WebhookRefused) as caught:
        verify_signature(SECRET, str(NOW), BODY, None, NOW, 300)
    assert (caught.value.status, "missing X-Ebackpack-Signature" in caught.value.reason) == (401, True)
    assert "unix seconds" in refused(timestamp="2025-11-24T12:00:00Z").reason
    assert "unix seconds" in refused(timestamp="-5").reason
    digest = sign(SECRET, NOW, BODY).removeprefix("sha256=")
    assert "must be sha256=" in refused(header=digest).reason
    assert "must be sha256=" in refused(header="sha1=" + digest).reason
    assert "64 hex digits" in refused(header="sha256=" + digest[:40]).reason
    assert "64 hex digits" in refused(header="sha256=" + "z" * 64).reason
    assert all(p.status == 401 for p in (refused(timestamp=None), refused(header="sha256=00")))


def test_no_secret_configured_refuses_everything_with_503() -> None:
    for secret in (None, ""):
        problem = refused(secret=secret)
        assert problem.status == 503 and problem.reason.startswith("webhook not configured")
        assert problem.retry_after is not None
