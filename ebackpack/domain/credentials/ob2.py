"""Open Badges 2.0 hosted verification: Issuer, BadgeClass, Assertion and RevocationList JSON.

Hosted means the verifier fetches the assertion from our origin each time: a revoked assertion then
answers 410 with `revoked: true`, and the issuer's revocation list names it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ebackpack.domain.rules import AwardRule, IssuerProfile

from .facts import CredentialFacts, iso
from .jsonld import OB2_CONTEXT
from .urls import PublicUrls


@dataclass(frozen=True)
class Revoked:
    verification_code: str
    reason: str


def issuer(profile: IssuerProfile, urls: PublicUrls) -> dict[str, Any]:
    return {
        "@context": OB2_CONTEXT,
        "type": "Issuer",
        "id": urls.ob2_issuer,
        "name": profile.name,
        "url": profile.url,
        "email": profile.email,
        "revocationList": urls.ob2_revocations,
    }


def badge_class(rule: AwardRule, urls: PublicUrls) -> dict[str, Any]:
    document: dict[str, Any] = {
        "@context": OB2_CONTEXT,
        "type": "BadgeClass",
        "id": urls.ob2_badge(rule.id),
        "name": rule.name,
        "description": rule.description,
        "image": urls.badge_image(rule.id),
        "criteria": {"narrative": rule.criteria},
        "issuer": urls.ob2_issuer,
        "tags": ["micro-credential", rule.microcredential.participation],
    }
    level = rule.microcredential.eqf_level
    if level is not None:
        document["alignment"] = [
            {
                "targetName": f"EQF level {level}",
                "targetFramework": "European Qualifications Framework",
                "targetCode": str(level),
                "targetUrl": f"http://data.europa.eu/snb/eqf/{level}",
            }
        ]
    return document


def assertion(facts: CredentialFacts, course_name: str, course_url: str) -> dict[str, Any]:
    document: dict[str, Any] = {
        "@context": OB2_CONTEXT,
        "type": "Assertion",
        "id": facts.urls.ob2_assertion(facts.verification_code),
        "recipient": {
            "type": "email",
            "hashed": True,
            "salt": facts.recipient_salt,
            "identity": facts.recipient_hash,
        },
        "badge": facts.urls.ob2_badge(facts.rule.id),
        "verification": {"type": "HostedBadge"},
        "issuedOn": iso(facts.issued_on),
        "image": facts.urls.badge_image(facts.rule.id),
        "evidence": [
            {
                "id": course_url,
                "name": course_name,
                "narrative": f"Completed the course \u201c{course_name}\u201d.",
            }
        ],
    }
    if facts.valid_until is not None:
        document["expires"] = iso(facts.valid_until)
    return document


def revoked_assertion(code: str, reason: str, urls: PublicUrls) -> dict[str, Any]:
    """The body of the 410 Gone answer for a revoked assertion."""
    return {
        "@context": OB2_CONTEXT,
        "type": "Assertion",
        "id": urls.ob2_assertion(code),
        "revoked": True,
        "revocationReason": reason,
    }


def revocation_list(revoked: Iterable[Revoked], urls: PublicUrls) -> dict[str, Any]:
    return {
        "@context": OB2_CONTEXT,
        "type": "RevocationList",
        "id": urls.ob2_revocations,
        "issuer": urls.ob2_issuer,
        "revokedAssertions": [
            {"id": urls.ob2_assertion(r.verification_code), "revocationReason": r.reason} for r in revoked
        ],
    }
