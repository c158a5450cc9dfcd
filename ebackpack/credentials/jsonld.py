"""JSON-LD processing that never touches the network: only the contexts bundled in `contexts/`."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from pyld import jsonld
from pyld.canon import URDNA2015

Dataset = dict[str, list[dict[str, dict[str, str]]]]  # pyld's RDF dataset: graph -> quads -> terms

CONTEXTS_DIR = Path(__file__).parent / "contexts"

CREDENTIALS_V2 = "https://www.w3.org/ns/credentials/v2"
OB3_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
OB2_CONTEXT = "https://w3id.org/openbadges/v2"


class UnknownContextError(ValueError):
    """A document asked for a context we do not bundle: refused rather than fetched."""


@cache
def bundled_contexts() -> dict[str, Any]:
    manifest = json.loads((CONTEXTS_DIR / "manifest.json").read_text(encoding="utf-8"))
    return {url: json.loads((CONTEXTS_DIR / entry["file"]).read_text(encoding="utf-8"))
            for url, entry in manifest.items()}


def offline_loader(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        document = bundled_contexts()[url]
    except KeyError:
        raise UnknownContextError(f"JSON-LD context {url} is not bundled (no network access)") from None
    # "static": pyld may keep the resolved context for every later document (ours never change),
    # instead of resolving and re-serializing it per document (~25 % of a canonicalization).
    return {"contextUrl": None, "documentUrl": url, "document": document, "tag": "static"}


def canonize(document: dict[str, Any]) -> str:
    """RDF Dataset Canonicalization (URDNA2015 = RDFC-1.0) as sorted N-Quads."""
    result: str = jsonld.normalize(document, {"algorithm": "URDNA2015", "format": "application/n-quads",
                                              "documentLoader": offline_loader})
    return result


def to_dataset(document: dict[str, Any]) -> Dataset:
    """JSON-LD -> RDF dataset (the expensive part of canonicalization)."""
    result: Dataset = jsonld.to_rdf(document, {"documentLoader": offline_loader,
                                               "produceGeneralizedRdf": False})
    return result


def canonize_dataset(dataset: Dataset) -> str:
    """RDFC-1.0 of an RDF dataset; it may modify `dataset`, so pass one of your own."""
    result: str = URDNA2015().main(dataset, {"format": "application/n-quads"})
    return result
