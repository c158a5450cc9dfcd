"""Open Badges 3.0 `OpenBadgeCredential` (VC Data Model 2.0) with the EU micro-credential elements.

The mapping of each element onto OB 3.0 is documented in docs/credentials.md; elements OB 3.0 has no
field for use terms named after the European Learning Model, declared in an inline context.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ebackpack.domain.rules import AwardRule, IssuerProfile

from . import statuslist
from .facts import CredentialFacts, iso
from .jsonld import CREDENTIALS_V2, OB3_CONTEXT
from .urls import PublicUrls

ELM = "http://data.europa.eu/snb/model/elm/"
EU_TERMS: dict[str, Any] = {
    "elm": ELM,
    "learningOutcome": {"@id": "elm:learningOutcome", "@container": "@list"},
    "volumeOfLearning": {"@id": "elm:volumeOfLearning", "@type": "http://www.w3.org/2001/XMLSchema#duration"},
    "assessmentType": {"@id": "elm:assessmentType"},
    "modeOfParticipation": {"@id": "elm:mode"},
    "qualityAssurance": {"@id": "elm:qualityAssurance"},
}
CONTEXT = [CREDENTIALS_V2, OB3_CONTEXT, EU_TERMS]
EQF = "http://data.europa.eu/snb/eqf/"


def issuer_profile(issuer: IssuerProfile, urls: PublicUrls) -> dict[str, Any]:
    """The awarding body; its id is the did:web whose document lists the signing keys."""
    return {
        "id": urls.did,
        "type": ["Profile"],
        "name": issuer.name,
        "url": issuer.url,
        "email": issuer.email,
        "address": {"type": ["Address"], "addressCountryCode": issuer.country},
    }


@dataclass(frozen=True)
class Shape:
    """What all credentials of one rule have in common: only the slot values differ between them."""

    rule: AwardRule
    issuer: IssuerProfile
    urls: PublicUrls
    expires: bool

    @property
    def key(self) -> tuple[str, bool]:
        return self.rule.id, self.expires


SLOTS = (
    "credential_id",
    "subject_id",
    "learner_name",
    "salt",
    "identity_hash",
    "valid_from",
    "valid_until",
    "status_list",
    "status_index",
)


def shape_of(facts: CredentialFacts) -> Shape:
    return Shape(facts.rule, facts.issuer, facts.urls, facts.valid_until is not None)


def slots_of(facts: CredentialFacts) -> dict[str, str]:
    return {
        "credential_id": facts.credential_id,
        "subject_id": facts.learner_subject_id,
        "learner_name": facts.learner_name,
        "salt": facts.recipient_salt,
        "identity_hash": facts.recipient_hash,
        "valid_from": iso(facts.issued_on),
        "valid_until": iso(facts.valid_until) if facts.valid_until else "",
        "status_list": str(facts.status_list),
        "status_index": str(facts.status_index),
    }


def achievement(shape: Shape) -> dict[str, Any]:
    rule, micro = shape.rule, shape.rule.microcredential
    result: dict[str, Any] = {
        "id": shape.urls.ob3_achievement(rule.id),
        "type": ["Achievement"],
        "achievementType": "MicroCredential",
        "name": rule.name,
        "description": rule.description,
        "criteria": {"narrative": rule.criteria},
        "image": {"id": shape.urls.badge_image(rule.id), "type": "Image"},
        "inLanguage": rule.language,
        "learningOutcome": micro.learning_outcomes,
        "assessmentType": micro.assessment,
        "modeOfParticipation": micro.participation,
        "qualityAssurance": micro.quality_assurance,
    }
    if micro.ects is not None:
        result["creditsAvailable"] = micro.ects
    if micro.hours is not None:
        result["volumeOfLearning"] = f"PT{micro.hours:g}H"
    if micro.eqf_level is not None:
        result["alignment"] = [
            {
                "type": ["Alignment"],
                "targetType": "ext:EQFLevel",
                "targetCode": str(micro.eqf_level),
                "targetName": f"EQF level {micro.eqf_level}",
                "targetUrl": f"{EQF}{micro.eqf_level}",
                "targetFramework": "European Qualifications Framework",
            }
        ]
    return result


def subject(shape: Shape, slots: Mapping[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "id": slots["subject_id"],
        "type": ["AchievementSubject"],
        "identifier": [
            {
                "type": "IdentityObject",
                "identityType": "emailAddress",
                "hashed": True,
                "identityHash": slots["identity_hash"],
                "salt": slots["salt"],
            },
            {
                "type": "IdentityObject",
                "identityType": "name",
                "hashed": False,
                "identityHash": slots["learner_name"],
            },
        ],
        "achievement": achievement(shape),
    }
    if shape.rule.microcredential.ects is not None:
        result["creditsEarned"] = shape.rule.microcredential.ects
    return result


def build(shape: Shape, slots: Mapping[str, str]) -> dict[str, Any]:
    """The unsigned credential of one shape filled with one award's slot values."""
    urls = shape.urls
    status_list = urls.status_list(slots["status_list"])
    document: dict[str, Any] = {
        "@context": CONTEXT,
        "id": urls.ob3_credential(slots["credential_id"]),
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": shape.rule.name,
        "issuer": issuer_profile(shape.issuer, urls),
        "validFrom": slots["valid_from"],
        "awardedDate": slots["valid_from"],
        "credentialSubject": subject(shape, slots),
        "credentialStatus": statuslist.entry(status_list, slots["status_index"]),
    }
    if shape.expires:
        document["validUntil"] = slots["valid_until"]
    return document


def credential(facts: CredentialFacts) -> dict[str, Any]:
    """The unsigned credential; `dataintegrity.sign` or `vcjwt.sign` adds the proof."""
    return build(shape_of(facts), slots_of(facts))


def dumps(document: dict[str, Any]) -> str:
    """The stored and served JSON text: UTF-8, keys in build order (a proof does not depend on it)."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
