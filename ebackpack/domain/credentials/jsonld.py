"""JSON-LD processing that never touches the network: only the contexts bundled in `contexts/`."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pyld import jsonld
from pyld.canon import URDNA2015

Dataset = dict[str, list[dict[str, dict[str, str]]]]  # pyld's RDF dataset: graph -> quads -> terms

CONTEXTS_DIR = Path(__file__).parent / "contexts"

CREDENTIALS_V2 = "https://www.w3.org/ns/credentials/v2"
CREDENTIALS_V1 = "https://www.w3.org/2018/credentials/v1"
DATA_INTEGRITY_V2 = "https://w3id.org/security/data-integrity/v2"
OB3_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
OB2_CONTEXT = "https://w3id.org/openbadges/v2"


class UnknownContextError(ValueError):
    """A document asked for a context we do not bundle: refused rather than fetched."""


@cache
def bundled_contexts() -> dict[str, Any]:
    manifest = json.loads((CONTEXTS_DIR / "manifest.json").read_text(encoding="utf-8"))
    return {
        url: json.loads((CONTEXTS_DIR / entry["file"]).read_text(encoding="utf-8"))
        for url, entry in manifest.items()
    }


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
    result: str = jsonld.normalize(
        document,
        {"algorithm": "URDNA2015", "format": "application/n-quads", "documentLoader": offline_loader},
    )
    return result


def to_dataset(document: dict[str, Any]) -> Dataset:
    """JSON-LD -> RDF dataset (the expensive part of canonicalization)."""
    result: Dataset = jsonld.to_rdf(
        document, {"documentLoader": offline_loader, "produceGeneralizedRdf": False}
    )
    return result


def canonize_dataset(dataset: Dataset) -> str:
    """RDFC-1.0 of an RDF dataset; it may modify `dataset`, so pass one of your own."""
    result: str = URDNA2015().main(dataset, {"format": "application/n-quads"})
    return result


# ------------------------------------------------------------------------------ untrusted documents
# RDFC-1.0 is exponential in the worst case (its "Dataset Poisoning" section): a document from outside is
# canonicalized only within bounds on its shape and on the algorithm's work, checked in that order so a
# refusal costs little. Our own credentials (a few dozen nodes, every blank node distinct) are far inside.


class CanonicalizationRefused(ValueError):
    """The document's shape or the work its canonicalization needs is over the bounds: refused."""


@dataclass(frozen=True)
class CanonBounds:
    # Before expansion: converting to RDF compares each value of a property with those it already has,
    # so it is quadratic in the values one node gets (measured: 2,000 values ~1 s, 5,000 ~5 s), and an
    # inline context costs time per term.
    max_values: int = 5_000  # objects, their members and array items (largest 1EdTech example: 639)
    max_array: int = 500  # items in one array
    max_blank_nodes: int = 1_000
    max_degree: int = 500  # quads that mention one blank node
    # Steps of the exponential part, Hash N-Degree Quads: a run costs one step per statement of its blank
    # node; each ordering of k look-alike related blank nodes that it tries costs k steps plus one per
    # identifier issued so far on its path (it copies them). Our fixtures' largest credential needs ~20k.
    max_work: int = 200_000
    max_depth: int = 100  # nested runs of Hash N-Degree Quads (a recursion per level)


UNTRUSTED = CanonBounds()


def canonize_untrusted(document: dict[str, Any], bounds: CanonBounds = UNTRUSTED) -> str:
    """`canonize`, for a document from outside: the same N-Quads, or CanonicalizationRefused."""
    _check_size(document, bounds)
    dataset = to_dataset(document)
    _check_shape(dataset, bounds)
    result: str = _BoundedURDNA2015(bounds).main(dataset, {"format": "application/n-quads"})
    return result


def check_size(document: Any, bounds: CanonBounds = UNTRUSTED) -> None:
    """Raises CanonicalizationRefused for a document too large to process (before JSON-LD expansion)."""
    _check_size(document, bounds)


def _check_size(document: Any, bounds: CanonBounds) -> None:
    """Counts JSON values, stopping past the bound (iterative: deep input is fine)."""
    count, pending = 0, [document]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            count += 1 + len(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            if len(item) > bounds.max_array:
                raise CanonicalizationRefused(
                    f"the credential has an array of {len(item):,} items, more than the "
                    f"{bounds.max_array:,} we canonicalize"
                )
            count += len(item)
            pending.extend(item)
        if count > bounds.max_values:
            raise CanonicalizationRefused(
                f"the credential has more than {bounds.max_values:,} JSON values (objects, their members "
                "and array items): refused before canonicalization (a canonicalization bomb, or far "
                "larger than any credential)"
            )


def _check_shape(dataset: Dataset, bounds: CanonBounds) -> None:
    degree: dict[str, int] = {}
    for quads in dataset.values():
        for quad in quads:
            for position, term in quad.items():
                if position != "predicate" and term["type"] == "blank node":
                    degree[term["value"]] = degree.get(term["value"], 0) + 1
    if len(degree) > bounds.max_blank_nodes:
        raise CanonicalizationRefused(
            f"the credential has {len(degree):,} blank nodes, more than the {bounds.max_blank_nodes:,} "
            "we canonicalize"
        )
    busiest = max(degree.values(), default=0)
    if busiest > bounds.max_degree:
        raise CanonicalizationRefused(
            f"a blank node of the credential is in {busiest:,} statements, more than the "
            f"{bounds.max_degree:,} we canonicalize"
        )


class _BoundedURDNA2015(URDNA2015):
    """pyld's RDFC-1.0 with a step counter on its exponential parts; the output is pyld's own."""

    def __init__(self, bounds: CanonBounds) -> None:
        super().__init__()
        self.bounds = bounds
        self.work = 0
        self.depth = 0

    def hash_n_degree_quads(self, id_: str, issuer: Any) -> Any:
        self._spend(len(self.blank_node_info[id_]["quads"]))
        self.depth += 1
        try:
            if self.depth > self.bounds.max_depth:
                raise CanonicalizationRefused(
                    f"canonicalizing the credential needs a recursion deeper than {self.bounds.max_depth} "
                    "(a chain of look-alike blank nodes: a canonicalization bomb)"
                )
            return super().hash_n_degree_quads(id_, issuer)
        finally:
            self.depth -= 1

    def create_hash_to_related(self, id_: str, issuer: Any) -> dict[str, list[str]]:
        related: dict[str, list[str]] = super().create_hash_to_related(id_, issuer)
        for group in related.values():  # the caller tries every ordering of each group
            self._spend(math.factorial(min(len(group), 20)) * (len(group) + len(issuer.existing)))
        return related

    def _spend(self, steps: int) -> None:
        self.work += steps
        if self.work > self.bounds.max_work:
            raise CanonicalizationRefused(
                f"canonicalizing the credential needs more than {self.bounds.max_work:,} steps (its blank "
                "nodes are arranged so that the work explodes: a canonicalization bomb)"
            )
