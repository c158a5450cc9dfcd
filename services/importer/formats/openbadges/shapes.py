"""Recognizing what a badge payload is (OB 2.0 or 3.0, JSON or compact JWS/JWT), and handing it to its
parser."""

from __future__ import annotations

from typing import Any

from services.importer.domain import Attestation, ImportContext, ImportRejected, SourceFormat
from services.importer.formats.openbadges.data_integrity import parse_ob3_json
from services.importer.formats.openbadges.fields import load_json_object
from services.importer.formats.openbadges.ob2_hosted import parse_ob2_json
from services.importer.formats.openbadges.ob2_signed import parse_ob2_jws
from services.importer.formats.openbadges.tokens import jws_parts
from services.importer.formats.openbadges.vc_jwt import parse_ob3_jwt


def is_ob3(document: dict[str, Any]) -> bool:
    """A verifiable credential (an OB 3.0 badge or endorsement, or any other VC): read as OB 3.0."""
    types = document.get("type")
    types = types if isinstance(types, list) else [types]
    return any(
        t in ("OpenBadgeCredential", "AchievementCredential", "EndorsementCredential", "VerifiableCredential")
        for t in types
    )


def is_ob2(document: dict[str, Any]) -> bool:
    """An assertion, or the stub an issuer serves for one it revoked (`id` and `revoked: true`)."""
    if document.get("revoked") is True and isinstance(document.get("id"), str):
        return True
    return document.get("type") == "Assertion" or "recipient" in document and "badge" in document


def parse_payload(payload: str, ctx: ImportContext, *, baked: str | None = None) -> Attestation:
    """JSON or compact JWS/JWT text (from a file or a baked image): OB 2.0 or 3.0 by its content.

    `baked` = "png" / "svg" when the payload came out of a baked image.
    """
    text = payload.strip()
    if text.startswith("{"):
        document = load_json_object(text, "badge JSON")
        if is_ob3(document):
            return parse_ob3_json(text, ctx, _source("ob3", "json", baked))
        if is_ob2(document):
            return parse_ob2_json(text, ctx, _source("ob2", "json", baked))
        raise ImportRejected("JSON that is neither an Open Badges 2.0 assertion nor a verifiable credential")
    if text.count(".") == 2:
        _header, body = jws_parts(text)
        if isinstance(body.get("vc"), dict) or is_ob3(body):
            return parse_ob3_jwt(text, ctx, _source("ob3", "jwt", baked))
        if is_ob2(body):
            return parse_ob2_jws(text, ctx, _source("ob2", "jws", baked))
        raise ImportRejected("a signed token that carries neither a credential nor an assertion")
    raise ImportRejected("badge data is neither JSON nor a compact JWS/JWT")


def _source(version: str, kind: str, baked: str | None) -> SourceFormat:
    return SourceFormat(f"{version}-{baked or kind}")
