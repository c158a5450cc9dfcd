"""Canonicalization of many documents of one shape, with JSON-LD expansion done once per shape.

RDFC-1.0 of a credential costs about 5 ms in pyld, nearly all of it turning JSON-LD into RDF, which
is the same for every credential of a rule. So we convert once with sentinel slot values, and per
document copy the RDF quads with the real values put in and run only the canonicalization.
Correctness guard: the first document of every shape is also canonicalized the slow way; if the two
ever differ, that shape falls back to the slow path for good (and says so in the log).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from .jsonld import Dataset, canonize, canonize_dataset, to_dataset

log = logging.getLogger(__name__)
Builder = Callable[[Mapping[str, str]], dict[str, Any]]
# A value put into an IRI must keep it an absolute IRI that JSON-LD would have kept as it is: plain
# characters only, and a value that makes up a whole IRI starts with a scheme (not `_:`, not relative).
SAFE_IRI_PART = re.compile(r"^[A-Za-z0-9._:$+\-/#%~@!&'()*,;=?]*$")
ABSOLUTE_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:(?!_)")


class _Template:
    def __init__(self, build: Builder, slots: Sequence[str]):
        self.marker = f"urn:ebackpack-slot-{secrets.token_hex(4)}-"
        self.sentinels = {name: f"{self.marker}{i}." for i, name in enumerate(slots)}
        self.dataset = to_dataset(build(self.sentinels))
        terms = [t for quads in self.dataset.values() for q in quads for t in q.values()]
        self.in_iri = {
            name
            for name, s in self.sentinels.items()
            if any(t["type"] == "IRI" and s in t["value"] for t in terms)
        }
        self.whole_iri = {
            name
            for name, s in self.sentinels.items()
            if any(t["type"] == "IRI" and t["value"] == s for t in terms)
        }
        self.trusted = False

    def fill(self, values: Mapping[str, str]) -> Dataset | None:
        """A fresh dataset with the real values, or None when a value cannot be placed safely."""
        if any(not SAFE_IRI_PART.match(values[name]) for name in self.in_iri) or any(
            not ABSOLUTE_IRI.match(values[name]) for name in self.whole_iri
        ):
            return None
        return {
            graph: [{position: self._term(term, values) for position, term in quad.items()} for quad in quads]
            for graph, quads in self.dataset.items()
        }

    def _term(self, term: dict[str, str], values: Mapping[str, str]) -> dict[str, str]:
        copy = dict(term)
        if self.marker in copy["value"]:
            for name, sentinel in self.sentinels.items():
                copy["value"] = copy["value"].replace(sentinel, values[name])
        return copy


class ShapeCanonizer:
    """`canonize(shape_key, build, values)` == `jsonld.canonize(build(values))`, faster."""

    def __init__(self, slots: Sequence[str]):
        self.slots = tuple(slots)
        self.templates: dict[Hashable, _Template | None] = {}

    def canonize(self, key: Hashable, build: Builder, values: Mapping[str, str]) -> str:
        if key not in self.templates:
            self.templates[key] = _Template(build, self.slots)
        template = self.templates[key]
        filled = template.fill(values) if template is not None else None
        if template is None or filled is None:
            return canonize(build(values))
        fast = canonize_dataset(filled)
        if not template.trusted:
            if fast != canonize(build(values)):
                log.warning("fast canonicalization differs for shape %r: using the slow path", key)
                self.templates[key] = None
                return canonize(build(values))
            template.trusted = True
        return fast
