"""What every credential format says about one award: the input of the OB 2.0 and OB 3.0 builders."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from ebackpack.domain.rules import AwardRule, IssuerProfile
from schemas import keyed_id

from .urls import PublicUrls


def new_salt() -> str:
    return secrets.token_hex(8)


def recipient_hash(email: str, salt: str) -> str:
    """Open Badges identity hash of a lower-cased email: `sha256$` + hex(SHA-256(email + salt))."""
    return "sha256$" + hashlib.sha256((email.strip().lower() + salt).encode()).hexdigest()


def learner_subject_id(site: str, learner_id: int, secret: bytes) -> str:
    """Pseudonymous, stable id of a learner at a site: no e-mail or Moodle id in the credential, and keyed
    with the installation's secret, so no one can find the Moodle user id by trying them all."""
    return "urn:uuid:" + keyed_id(secret, "learner", site, learner_id)


def as_utc(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; everything we store is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def iso(moment: datetime) -> str:
    """XSD dateTime in UTC with a `Z`, whole seconds: the form every verifier parses."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class CredentialFacts:
    credential_id: str
    verification_code: str
    rule: AwardRule
    issuer: IssuerProfile
    learner_subject_id: str  # pseudonymous `urn:uuid:` of the learner at this site
    learner_name: str
    recipient_salt: str
    recipient_hash: str
    issued_on: datetime
    valid_until: datetime | None
    status_list: int
    status_index: int
    urls: PublicUrls

    def expired(self, now: datetime) -> bool:
        return self.valid_until is not None and as_utc(self.valid_until) <= now
