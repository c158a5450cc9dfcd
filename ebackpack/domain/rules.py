"""Award rules: which Moodle course completion earns which achievement. Pure, loaded from TOML."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator


class IssuerProfile(BaseModel):
    name: str = Field(description="The awarding body.")
    url: str
    email: str = Field(description="Contact address, published in the Open Badges issuer profile.")
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code of the country.")


class MicroCredential(BaseModel):
    """EU micro-credential elements (Council Recommendation of 16 June 2022, Annex I, part I).

    Learner, title, issuer country, awarding body and issue date come from the award itself.
    """

    learning_outcomes: list[str] = Field(min_length=1)
    ects: float | None = Field(None, gt=0, description="Notional workload in ECTS credits.")
    hours: float | None = Field(None, gt=0, description="Notional workload in hours.")
    eqf_level: int | None = Field(None, ge=1, le=8, description="European Qualifications Framework level.")
    assessment: str = Field(description="Type of assessment, e.g. 'online test, supervised'.")
    participation: Literal["online", "onsite", "blended"] = Field(description="Form of participation.")
    quality_assurance: str = Field(description="Type of quality assurance used to underpin the credential.")

    @model_validator(mode="after")
    def _has_workload(self) -> MicroCredential:
        if self.ects is None and self.hours is None:
            raise ValueError("a micro-credential states its notional workload: set ects and/or hours")
        return self


class AwardRule(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Stable: part of every credential id.")
    course_id: int
    name: str
    description: str
    criteria: str
    badge: bool = True
    certificate: bool = True
    badge_image: str | None = None
    certificate_template: str = "default"
    language: Literal["pl", "en"] = "en"
    valid_for_days: int | None = Field(None, gt=0, description="Validity period; none = never expires.")
    reminder_days: int | None = Field(
        None,
        gt=0,
        description=(
            "Notifier: days before expiry the recertification reminder goes out; none = the "
            "`expiry_reminder_days` setting."
        ),
    )
    microcredential: MicroCredential


class RuleBook(BaseModel):
    issuer: IssuerProfile
    rules: list[AwardRule]

    @model_validator(mode="after")
    def _one_rule_per_course(self) -> RuleBook:
        seen: dict[int, str] = {}
        for rule in self.rules:
            if rule.course_id in seen:
                raise ValueError(
                    f"courses may have one rule: {rule.id!r} and {seen[rule.course_id]!r} "
                    f"both match course {rule.course_id}"
                )
            seen[rule.course_id] = rule.id
        return self

    def for_course(self, course_id: int) -> AwardRule | None:
        return next((r for r in self.rules if r.course_id == course_id), None)


def load_rules(path: Path) -> RuleBook:
    try:
        return RuleBook.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read award rules from {path}: {exc}") from exc
