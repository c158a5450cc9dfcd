"""Award rules: which Moodle course completion earns which achievement. Pure, loaded from TOML."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator


class IssuerProfile(BaseModel):
    name: str = Field(description="The awarding body.")
    url: str
    country: str = Field(min_length=2, max_length=2)


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


class RuleBook(BaseModel):
    issuer: IssuerProfile
    rules: list[AwardRule]

    @model_validator(mode="after")
    def _one_rule_per_course(self) -> RuleBook:
        seen: dict[int, str] = {}
        for rule in self.rules:
            if rule.course_id in seen:
                raise ValueError(f"courses may have one rule: {rule.id!r} and {seen[rule.course_id]!r} "
                                 f"both match course {rule.course_id}")
            seen[rule.course_id] = rule.id
        return self

    def for_course(self, course_id: int) -> AwardRule | None:
        return next((r for r in self.rules if r.course_id == course_id), None)


def load_rules(path: Path) -> RuleBook:
    try:
        return RuleBook.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read award rules from {path}: {exc}") from exc
