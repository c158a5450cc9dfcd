"""Signs an award's Open Badges 3.0 credential in each configured proof format."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import dataintegrity, ob3, vcjwt
from .facts import CredentialFacts, iso
from .fastcanon import ShapeCanonizer
from .keys import KeyRing

DATA_INTEGRITY = "ob3-di"
JWT = "ob3-jwt"
FORMATS = (DATA_INTEGRITY, JWT)


@dataclass(frozen=True)
class Signed:
    format: str
    document: str  # JSON text of the credential with its proof, or the compact JWT
    verification_method: str


class CredentialSigner:
    def __init__(self, ring: KeyRing, formats: Collection[str] = FORMATS):
        unknown = set(formats) - set(FORMATS)
        if unknown:
            raise ValueError(f"unknown credential formats {sorted(unknown)}; known: {', '.join(FORMATS)}")
        self.ring = ring
        self.formats = tuple(f for f in FORMATS if f in formats)
        self.documents = ShapeCanonizer(ob3.SLOTS)
        self.options = ShapeCanonizer(("created",))

    def sign(self, facts: CredentialFacts, now: datetime | None = None) -> list[Signed]:
        now = now or datetime.now(UTC)
        shape, slots = ob3.shape_of(facts), ob3.slots_of(facts)
        unsigned = ob3.build(shape, slots)
        signed = []
        if DATA_INTEGRITY in self.formats:
            signed.append(self._data_integrity(facts, shape, slots, unsigned, iso(now)))
        if JWT in self.formats:
            key = self.ring.current("ES256")
            method = facts.urls.verification_method(key.kid)
            signed.append(Signed(JWT, vcjwt.sign(unsigned, key, method, int(now.timestamp())), method))
        return signed

    def _data_integrity(
        self,
        facts: CredentialFacts,
        shape: ob3.Shape,
        slots: dict[str, str],
        unsigned: dict[str, Any],
        created: str,
    ) -> Signed:
        key = self.ring.current("Ed25519")
        method = facts.urls.verification_method(key.kid)
        canonical_document = self.documents.canonize(shape.key, lambda v: ob3.build(shape, v), slots)
        canonical_options = self.options.canonize(
            method,
            lambda v: dataintegrity.proof_options(unsigned, method, v["created"]),
            {"created": created},
        )
        document = dataintegrity.sign(
            unsigned, key, method, created, canonical=(canonical_options, canonical_document)
        )
        return Signed(DATA_INTEGRITY, ob3.dumps(document), method)
