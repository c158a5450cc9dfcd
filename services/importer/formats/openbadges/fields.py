"""Reading the plain values of badge JSON: dates, language maps, the issuer's id, a JSON object."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from services.importer.domain import ImportRejected


def parse_datetime(value: Any) -> datetime | None:
    """An ISO 8601 date-time (a date without a zone is taken as UTC), or None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_numeric_date(value: Any) -> datetime | None:
    """A JWT NumericDate (seconds since the epoch), or None when it is absent or out of range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def plain_text(value: Any) -> str | None:
    """A plain string, or the English / first entry of a language map."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        for key in ("en", "@value", "pl"):
            if isinstance(value.get(key), str):
                return str(value[key])
        first = next((v for v in value.values() if isinstance(v, str)), None)
        return first
    return None


def load_json_object(text: str, what: str) -> dict[str, Any]:
    """The JSON object `text` holds; anything else refuses the upload, naming `what` it should be."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ImportRejected(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ImportRejected(f"{what} is not a JSON object")
    return value


def issuer_id_of(issuer: Any) -> str | None:
    """The id of an issuer given as an object or as its id (URL, DID)."""
    if isinstance(issuer, dict):
        return str(issuer.get("id") or "") or None
    return str(issuer) if isinstance(issuer, str) else None
