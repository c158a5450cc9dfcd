"""Canonicalization (RDFC-1.0) of an uploaded JSON-LD credential, within bounds.

A credential crafted so that canonicalization explodes (a "poison graph": a clique, a long ring or many
look-alike components of blank nodes) is refused with the reason, instead of holding a worker. The
bounds (see `ebackpack.domain.credentials.jsonld.CanonBounds`) are on the document's shape first and then on
the algorithm's steps; the per-file time budget of the worker pool (`sandbox.py`) is the backstop.
"""

from __future__ import annotations

from typing import Any

from ebackpack.domain.credentials.jsonld import CanonicalizationRefused, canonize_untrusted
from services.importer.domain import ImportRejected


def canonize(document: dict[str, Any]) -> str:
    """The N-Quads of `document`, or ImportRejected (the whole upload is refused) over the bounds."""
    try:
        return canonize_untrusted(document)
    except CanonicalizationRefused as exc:
        raise ImportRejected(f"{exc}: rejected") from None
