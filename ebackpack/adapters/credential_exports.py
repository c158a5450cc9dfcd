"""Every downloadable form of one credential, for the backpack's endpoints and `credential export`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ebackpack.adapters.credential_store import CredentialStore
from ebackpack.adapters.persistence.tables import AwardRow
from ebackpack.domain.credentials import baking, ob2
from ebackpack.domain.credentials.signer import DATA_INTEGRITY, JWT

FORMATS = ("ob2", "ob2-png", "ob2-svg", "ob3", "ob3-jwt", "ob3-png")


class ExportError(LookupError):
    """The credential has no such form (yet): the message says why."""


@dataclass(frozen=True)
class Export:
    content: bytes
    media_type: str
    filename: str


@lru_cache(maxsize=64)
def badge_png(title: str, issuer: str) -> bytes:
    return baking.badge_png(title, issuer)


@lru_cache(maxsize=64)
def badge_svg(title: str, issuer: str) -> str:
    return baking.badge_svg(title, issuer)


def assertion_json(store: CredentialStore, award: AwardRow) -> dict[str, Any]:
    facts = store.facts(award)
    if facts is None:
        raise ExportError(f"credential {award.credential_id} was saved before credentials were signed")
    course = store.course(award.course_id)
    course_name = course.fullname if course else award.achievement_name
    return ob2.assertion(facts, course_name, store.course_url(award.course_id))


def export(store: CredentialStore, award: AwardRow, fmt: str) -> Export:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    stem = f"credential-{award.verification_code}"
    if fmt.startswith("ob2"):
        return _ob2(store, award, fmt, stem)
    signed = store.signed(award.credential_id, JWT if fmt == "ob3-jwt" else DATA_INTEGRITY)
    if signed is None:
        raise ExportError(
            f"credential {award.verification_code} has no stored {fmt} form "
            "(that proof format was off when it was issued)"
        )
    if fmt == "ob3":
        return Export(signed.document.encode(), "application/vc+ld+json", f"{stem}.json")
    if fmt == "ob3-jwt":
        return Export(signed.document.encode(), "application/jwt", f"{stem}.jwt")
    image = badge_png(award.achievement_name, store.rules.issuer.name)
    return Export(baking.bake_png(image, "openbadgecredential", signed.document), "image/png", f"{stem}.png")


def _ob2(store: CredentialStore, award: AwardRow, fmt: str, stem: str) -> Export:
    assertion = assertion_json(store, award)
    text = json.dumps(assertion, ensure_ascii=False, indent=2)
    if fmt == "ob2":
        return Export(text.encode(), "application/ld+json", f"{stem}.ob2.json")
    issuer = store.rules.issuer.name
    if fmt == "ob2-png":
        baked = baking.bake_png(badge_png(award.achievement_name, issuer), "openbadges", text)
        return Export(baked, "image/png", f"{stem}.ob2.png")
    svg = baking.bake_svg(
        badge_svg(award.achievement_name, issuer), ob3=False, payload=text, verify_url=assertion["id"]
    )
    return Export(svg.encode(), "image/svg+xml", f"{stem}.ob2.svg")
