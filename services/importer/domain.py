"""The importer's pure core: what parsers need to turn an upload into the one normalized record
(`ebackpack.domain.attestations.record.Attestation`, shared with the backpack, which shows it).

Parsers (``services/importer/formats/``) turn uploaded bytes into an :class:`Attestation`. They never
touch Kafka, the database or S3; what they need from the outside (the learner, the clock, trusted
issuers, optional network access, our own credentials) comes in an :class:`ImportContext`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

# The record, its statuses and reasons, and the rejection are defined in core (the backpack shows records
# and refuses uploads too); the importer's modules import them from here.
from ebackpack.domain.attestations.errors import ImportRejected  # noqa: F401
from ebackpack.domain.attestations.record import (  # noqa: F401 (imported from here by the parsers)
    Attestation,
    IssuerRef,
    RecipientMatch,
    Said,
    SourceFormat,
    Verification,
    VerificationStatus,
    joined,
    polish_of,
    say,
)

# Clocks disagree by a little: a credential signed "now" on a server a minute ahead is not "not yet
# valid" here. The W3C VC verifier and the 1EdTech validators allow a few minutes; we allow 5 either way.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Learner:
    """Who uploaded: the identity the credential's recipient is compared with."""

    email: str
    name: str | None = None
    identifiers: frozenset[str] = frozenset()  # other ids the learner is known by (DIDs, student numbers)


class Fetcher(Protocol):
    """Network access under the import's policy (timeouts, size cap, no private addresses)."""

    def get(self, url: str, accept: str = "application/json") -> bytes: ...


class FetchError(Exception):
    """A fetch was refused by policy or failed; the message says which and why."""


@dataclass(frozen=True)
class OwnCredential:
    """One of our own awards, looked up by its verification code."""

    code: str
    title: str
    issuer_name: str
    issuer_url: str
    recipient_email: str
    issued_on: datetime
    expires_on: datetime | None
    revoked_reason: str | None
    revoked: bool = False


@dataclass(frozen=True)
class ImportContext:
    learner: Learner
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Issuer ids (URLs, DIDs, certificate subjects) whose valid signatures count as `verified`.
    trusted_issuers: frozenset[str] = frozenset()
    fetcher: Fetcher | None = None  # None: network fetches are off (the embedded default)
    # A verification code or credential id of ours -> that award (None: not ours / unknown).
    own_credential: Callable[[str], OwnCredential | None] | None = None
    # A verification method of ours (our did:web#kid) -> its public JWK.
    own_key: Callable[[str], dict[str, Any] | None] | None = None
    own_public_url: str | None = None  # base URL of our verification pages


def utf8_text(data: bytes) -> str:
    """Uploaded text (a BOM is allowed), or a rejection that says where it stops being UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRejected(f"the file is not UTF-8 text (byte {exc.start})") from None


def email_matches(learner_email: str, identity: str, *, hashed: bool, salt: str | None = None) -> bool:
    """Compares an Open Badges identity (plain, or `sha256$hex` / `md5$hex` with an optional salt)."""
    email = learner_email.strip().lower()
    if not email:  # a learner without a known address matches nobody
        return False
    if not hashed:
        return identity.strip().lower() == email
    algorithm, _, digest = identity.partition("$")
    if algorithm.lower() not in ("sha256", "md5") or not digest:
        return False
    computed = hashlib.new(algorithm.lower(), (email + (salt or "")).encode()).hexdigest()
    return computed == digest.lower()


OFFLINE = "{what}: network fetches are off (EBACKPACK_IMPORT_NETWORK), so this could not be checked"


def not_verifiable_offline(what: str) -> str:
    return OFFLINE.format(what=what)


def offline(what: Said) -> Said:
    return say(OFFLINE, what=what)


def not_yet_valid(valid_from: datetime | None, now: datetime) -> bool:
    return valid_from is not None and valid_from > now + CLOCK_SKEW


def has_expired(valid_until: datetime | None, now: datetime) -> bool:
    return valid_until is not None and valid_until <= now - CLOCK_SKEW
