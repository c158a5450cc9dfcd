"""The normalized record of one external attestation, as the importer stores it (`attestations.record`)
and the backpack shows it: formats, verification statuses, and reasons in the two languages the pages
speak (the Polish comes from the catalogue in `reasons_pl.py`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache

from pydantic import BaseModel, Field, model_validator


class VerificationStatus(StrEnum):
    """What the importer could establish, from strongest to weakest claim."""

    VERIFIED = "verified"  # signature or lookup valid, issuer known (trusted or our own)
    ISSUER_UNKNOWN = "signature valid but issuer not known"
    NOT_VERIFIABLE = "not verifiable"  # nothing to check (scan, photo) or the check needs the network
    INVALID = "invalid"  # tampered, malformed proof, wrong key
    REVOKED = "revoked"
    EXPIRED = "expired"


class SourceFormat(StrEnum):
    OB2_JSON = "ob2-json"
    OB2_JWS = "ob2-jws"
    OB2_PNG = "ob2-png"
    OB2_SVG = "ob2-svg"
    OB2_HOSTED = "ob2-hosted"
    OB3_JSON = "ob3-json"
    OB3_JWT = "ob3-jwt"
    OB3_PNG = "ob3-png"
    OB3_SVG = "ob3-svg"
    EUROPASS_EDC = "europass-edc"
    PDF = "pdf"
    IMAGE = "image"
    URL = "url"  # a submitted link that is not an Open Badges assertion (a verification page)


class RecipientMatch(StrEnum):
    MATCH = "match"  # the credential names the learner (e-mail, e-mail hash or identifier)
    MISMATCH = "mismatch"  # it names someone else
    UNKNOWN = "unknown"  # it names nobody we can compare (no identity, or only a name)


class IssuerRef(BaseModel):
    name: str | None = None
    url: str | None = None
    identifier: str | None = Field(None, description="id / DID / certificate subject of the issuer.")


@dataclass(frozen=True)
class Said:
    """A reason in the two languages the pages speak (`en` is what events and logs carry)."""

    en: str
    pl: str

    def __add__(self, other: Said) -> Said:
        return Said(f"{self.en}; {other.en}", f"{self.pl}; {other.pl}")


def _param(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def say(template: str, **params: object) -> Said:
    """A reason from the catalogue (`reasons_pl.POLISH`: the English text is the key, as on the pages).

    Parameters (URLs, dates, the library's own error text) go into both languages unchanged; a `Said`
    parameter goes in in each language.
    """
    from ebackpack.domain.attestations.reasons_pl import (
        POLISH,  # the catalogue is data; the model stays first
    )

    english = {name: value.en if isinstance(value, Said) else _param(value) for name, value in params.items()}
    polish = {name: value.pl if isinstance(value, Said) else _param(value) for name, value in params.items()}
    return Said(template.format(**english), POLISH.get(template, template).format(**polish))


_FIELD = re.compile(r"\{(\w+)\}")
MAX_MATCHED_REASON = 8192  # longer English reasons are not reverse-translated (bounded matching work)


@cache
def _patterns() -> list[tuple[re.Pattern[str], str]]:
    """The catalogue's templates as patterns, most literal text first; templates that are nothing but
    parameters ("{url}") would match anything and are left out."""
    from ebackpack.domain.attestations.reasons_pl import POLISH

    found = []
    for english, polish in POLISH.items():
        literal = _FIELD.sub("", english)
        if len(literal.strip(" ;:.,()'")) < 3:
            continue
        parts = _FIELD.split(english)  # text, name, text, name, ..., text
        regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
        found.append((len(literal), re.compile(regex, re.DOTALL), polish))
    return [(pattern, polish) for _, pattern, polish in sorted(found, key=lambda item: -item[0])]


def polish_of(english: str, depth: int = 0) -> str | None:
    """The Polish of an English reason built from catalogue templates (parameters that are themselves
    catalogue phrases are translated too), or None when it matches none."""
    if depth > 3 or len(english) > MAX_MATCHED_REASON:
        return None
    for pattern, polish in _patterns():
        if match := pattern.fullmatch(english):
            values = {name: polish_of(value, depth + 1) or value for name, value in match.groupdict().items()}
            return polish.format(**values)
    return None


def joined(*parts: Said | None) -> Said:
    """The parts that are there, `; `-separated."""
    present = [part for part in parts if part is not None and part.en]
    result = present[0] if present else Said("", "")
    for part in present[1:]:
        result = result + part
    return result


class Verification(BaseModel):
    status: VerificationStatus
    method: str = Field(description="How it was checked, e.g. 'eddsa-rdfc-2022 (did:key)', 'JAdES seal'.")
    reason: str = Field(description="Plain words: why this status, and what could not be checked.")
    reason_pl: str | None = Field(None, description="The same reason in Polish (None: only English known).")

    @model_validator(mode="after")
    def _polish_from_the_catalogue(self) -> Verification:
        """A reason made without `say` (or stored before reasons were kept in Polish) gets its Polish by
        matching the catalogue's English templates."""
        if self.reason_pl is None:
            self.reason_pl = polish_of(self.reason)
        return self

    @classmethod
    def of(cls, status: VerificationStatus, method: str, reason: Said) -> Verification:
        return cls(status=status, method=method, reason=reason.en, reason_pl=reason.pl)

    def said(self) -> Said:
        return Said(self.reason, self.reason_pl or self.reason)


class Attestation(BaseModel):
    """The normalized record of one imported credential."""

    source_format: SourceFormat
    title: str
    issuer: IssuerRef = Field(default_factory=IssuerRef)
    issued_on: datetime | None = None
    expires_on: datetime | None = None
    description: str | None = None
    learning_outcomes: list[str] = Field(default_factory=list)
    workload: str | None = Field(None, description="e.g. '5 ECTS', '40 hours', as the credential states it.")
    recipient: RecipientMatch = RecipientMatch.UNKNOWN
    recipient_detail: str = ""
    verification: Verification
    urls: list[str] = Field(default_factory=list, description="Links found: QR codes, verification pages.")
    original_json: str | None = Field(None, description="The credential's JSON text exactly as received.")
