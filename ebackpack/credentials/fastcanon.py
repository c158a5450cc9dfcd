"""Canonicalization of many documents of one shape, with JSON-LD expansion done once per shape.

RDFC-1.0 of a credential costs about 5 ms in pyld, nearly all of it JSON-LD expansion, which is the
same for every credential of a rule. So we expand once with sentinel slot values, and per document
substitute the real values into the N-Quads and run only the canonicalization (about 0.5 ms).
Correctness guard: the first document of every shape is also canonicalized the slow way; if the two
ever differ, that shape falls back to the slow path for good (and says so in the log).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from .jsonld import canonize, canonize_nquads, to_nquads

log = logging.getLogger(__name__)
Builder = Callable[[Mapping[str, str]], dict[str, Any]]
# Values made only of these characters read the same inside an IRI and inside a literal.
PLAIN = re.compile(r"^[A-Za-z0-9._:$+\-/#%]*$")


def _escape_literal(value: str) -> str:
    return (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
            .replace("\t", "\\t"))


class _Template:
    def __init__(self, build: Builder, slots: Sequence[str]):
        nonce = secrets.token_hex(4)
        self.sentinels = {name: f"urn:ebackpack-slot-{nonce}-{i}" for i, name in enumerate(slots)}
        self.nquads = to_nquads(build(self.sentinels))
        self.in_iri = {name: re.search("<[^>]*" + re.escape(s), self.nquads) is not None
                       for name, s in self.sentinels.items()}
        self.trusted = False

    def fill(self, values: Mapping[str, str]) -> str | None:
        """The N-Quads with real values, or None when a value cannot be placed safely."""
        text = self.nquads
        for name, sentinel in self.sentinels.items():
            value = values[name]
            if not PLAIN.match(value):
                if self.in_iri[name]:
                    return None
                value = _escape_literal(value)
            text = text.replace(sentinel, value)
        return text


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
        fast = canonize_nquads(filled)
        if not template.trusted:
            if fast != canonize(build(values)):
                log.warning("fast canonicalization differs for shape %r: using the slow path", key)
                self.templates[key] = None
                return canonize(build(values))
            template.trusted = True
        return fast
