"""The documents one OB 2.0 import reads (badge classes, issuer profiles, keys, revocation lists), each
fetched once, and the issuer profile as the issuer serves it at its own id."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from services.importer.domain import FetchError, ImportContext, Said, offline, say
from services.importer.formats.openbadges.fields import issuer_id_of


@dataclass
class Documents:
    """The badge classes, issuer profiles and lists one OB 2.0 import fetches, each fetched once.
    `enabled=False` (offline, or a token already refused) fetches nothing."""

    ctx: ImportContext
    enabled: bool = True
    _seen: dict[str, tuple[dict[str, Any] | None, Said | None]] = field(default_factory=dict)

    def get(self, url: str) -> tuple[dict[str, Any] | None, Said | None]:
        """(the JSON object at `url`, or None and why not)."""
        if self.ctx.fetcher is None or not self.enabled:
            return None, offline(say("{url}", url=url))
        if url not in self._seen:
            self._seen[url] = self._fetch(url)
        return self._seen[url]

    def _fetch(self, url: str) -> tuple[dict[str, Any] | None, Said | None]:
        assert self.ctx.fetcher is not None
        try:
            document = json.loads(self.ctx.fetcher.get(url))
        except FetchError as exc:
            return None, say("{url} could not be fetched: {error}", url=url, error=exc)
        except ValueError:
            return None, say("{url} does not serve JSON", url=url)
        if not isinstance(document, dict):
            return None, say("{url} does not serve a JSON object", url=url)
        return document, None

    def remember(self, url: str, document: dict[str, Any]) -> None:
        """A document the import already holds (a key embedded in a profile) under its id."""
        self._seen.setdefault(url, (document, None))

    def node(self, value: Any) -> dict[str, Any]:
        """An embedded object as it is, or the object its URL serves ({} when that fails)."""
        if isinstance(value, dict):
            return value
        if isinstance(value, str) and value.startswith(("https://", "http://")):
            return self.get(value)[0] or {}
        return {}


def issuer_profile(issuer_id: str | None, docs: Documents) -> tuple[dict[str, Any] | None, Said | None]:
    """The issuer profile as the issuer serves it at its own id (the OB 2.0 identity of an issuer)."""
    if not issuer_id or not issuer_id.startswith(("https://", "http://")):
        return None, say("the issuer {issuer} has no profile URL", issuer=issuer_id or "(unnamed)")
    profile, problem = docs.get(issuer_id)
    if profile is None:
        return None, problem
    if profile.get("id") != issuer_id:
        return None, say(
            "the profile served at {url} names another id ({other})",
            url=issuer_id,
            other=str(profile.get("id"))[:200],
        )
    return profile, None


def badge_issuer_id(badge_ref: Any, docs: Documents) -> str | None:
    """The issuer id of a badge class, embedded or fetched."""
    return issuer_id_of(docs.node(badge_ref).get("issuer"))
