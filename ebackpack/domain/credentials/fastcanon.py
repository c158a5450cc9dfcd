"""Canonicalization of many documents of one shape, with JSON-LD expansion done once per shape.

RDFC-1.0 of a credential costs about 5 ms in pyld, nearly all of it turning JSON-LD into RDF, which
is the same for every credential of a rule. So we convert once with sentinel slot values, and per
document copy the RDF quads with the real values put in and run only the canonicalization.
Correctness guard: the first document of every shape is also canonicalized the slow way; if the two
ever differ, that shape falls back to the slow path for good (and says so in the log).

The canonicalization itself (`_Quads`): RDFC-1.0 issues canonical blank node labels in the order of
each node's first-degree hash (the sorted N-Quads that mention it, itself as `_:a`, other blank nodes
as `_:z`) whenever those hashes are all different, which they are in our credentials; the exponential
part of the algorithm is only for nodes that share a hash. So the quads are kept as N-Quads text per
shape, each document's values put in, the hashes taken, and the labelled lines sorted: the same
bytes as pyld's serialization (the same escaping, the same line form), without pyld's copies of every
term. Should two blank nodes ever share a hash, the document goes through pyld's full algorithm.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from pyld.nquads import RDF_LANGSTRING, XSD_STRING, escape

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
        self.quads = _Quads(self.dataset)
        self.trusted = False

    def safe(self, values: Mapping[str, str]) -> bool:
        """Whether every value can be put in the template: one in an IRI keeps it an absolute IRI that
        JSON-LD would have kept as it is."""
        return all(SAFE_IRI_PART.match(values[name]) for name in self.in_iri) and all(
            ABSOLUTE_IRI.match(values[name]) for name in self.whole_iri
        )

    def put(self, text: str, literal: bool, values: Mapping[str, str]) -> str:
        """`text` (an N-Quads term) with the real values in place of the sentinels."""
        if self.marker not in text:
            return text
        for name, sentinel in self.sentinels.items():
            if sentinel in text:
                text = text.replace(sentinel, escape(values[name]) if literal else values[name])
        return text

    def fill(self, values: Mapping[str, str]) -> Dataset:
        """A fresh pyld dataset with the real values (for pyld's full algorithm)."""
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


Term = tuple[str, bool]  # (N-Quads text, or a blank node's label; is it a blank node)
CANONICAL_PREFIX = "_:c14n"


def _term(term: dict[str, str]) -> Term:
    """A subject, object or graph name as pyld's serialize_nquad writes it (a literal escaped)."""
    kind, value = term["type"], term["value"]
    if kind == "blank node":
        return value, True
    if kind == "IRI":
        return f"<{value}>", False
    text = f'"{escape(value)}"'
    if term["datatype"] == RDF_LANGSTRING:
        text += f"@{term['language']}" if term.get("language") else ""
    elif term["datatype"] != XSD_STRING:
        text += f"^^<{term['datatype']}>"
    return text, False


class _Quads:
    """A dataset as N-Quads pieces: per quad its subject, predicate, object and graph, the blank nodes by
    label, the rest as text in which the slot sentinels still stand."""

    def __init__(self, dataset: Dataset):
        self.quads: list[tuple[Term, str, Term, Term | None]] = []
        for graph, triples in dataset.items():
            name = None if graph == "@default" else (graph, graph.startswith("_:"))
            if name is not None and not name[1]:
                name = (f"<{graph}>", False)
            for triple in triples:
                self.quads.append(
                    (
                        _term(triple["subject"]),
                        f"<{triple['predicate']['value']}>",
                        _term(triple["object"]),
                        name,
                    )
                )
        # pyld's blank node to quads map: a quad once for every position a node takes in it
        self.mentions: dict[str, list[int]] = {}
        for index, (subject, _p, obj, name) in enumerate(self.quads):
            for term in (subject, obj, name):
                if term is not None and term[1]:
                    self.mentions.setdefault(term[0], []).append(index)

    def canonize(self, fill: Callable[[str, bool], str]) -> str | None:
        """RDFC-1.0 N-Quads with each text piece passed through `fill(text, is_literal)`, or None when
        two blank nodes share a first-degree hash (then pyld must run the full algorithm)."""
        lines = [
            (self._fill(s, fill), p, self._fill(o, fill), self._fill(g, fill) if g else None)
            for s, p, o, g in self.quads
        ]
        hashes: dict[str, str] = {}
        for node, indexes in self.mentions.items():
            first_degree = sorted(_line(lines[i], {node: "_:a"}, "_:z") for i in indexes)
            hashes[hashlib.sha256("".join(first_degree).encode()).hexdigest()] = node
        if len(hashes) != len(self.mentions):
            return None
        labels = {node: f"{CANONICAL_PREFIX}{n}" for n, (_h, node) in enumerate(sorted(hashes.items()))}
        return "".join(sorted(_line(line, labels, "") for line in lines))

    @staticmethod
    def _fill(term: Term, fill: Callable[[str, bool], str]) -> Term:
        return term if term[1] else (fill(term[0], term[0].startswith('"')), False)


def _line(quad: tuple[Term, str, Term, Term | None], labels: Mapping[str, str], other: str) -> str:
    """One N-Quads line; blank nodes by `labels`, any other one as `other`."""
    s, p, o, g = quad
    subject = labels.get(s[0], other) if s[1] else s[0]
    obj = labels.get(o[0], other) if o[1] else o[0]
    graph = "" if g is None else " " + (labels.get(g[0], other) if g[1] else g[0])
    return f"{subject} {p} {obj}{graph} .\n"


class ShapeCanonizer:
    """`canonize(shape_key, build, values)` == `jsonld.canonize(build(values))`, faster."""

    def __init__(self, slots: Sequence[str]):
        self.slots = tuple(slots)
        self.templates: dict[Hashable, _Template | None] = {}

    def canonize(self, key: Hashable, build: Builder, values: Mapping[str, str]) -> str:
        if key not in self.templates:
            self.templates[key] = _Template(build, self.slots)
        template = self.templates[key]
        if template is None or not template.safe(values):
            return canonize(build(values))
        fast = fast_canonize(template, values)
        if not template.trusted:
            if fast != canonize(build(values)):
                log.warning("fast canonicalization differs for shape %r: using the slow path", key)
                self.templates[key] = None
                return canonize(build(values))
            template.trusted = True
        return fast


def fast_canonize(template: _Template, values: Mapping[str, str]) -> str:
    """RDFC-1.0 of the template's dataset with `values` put in (`template.safe(values)` holds)."""
    canonical = template.quads.canonize(lambda text, literal: template.put(text, literal, values))
    return canonical if canonical is not None else canonize_dataset(template.fill(values))
