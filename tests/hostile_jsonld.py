"""JSON-LD credentials crafted so that RDF canonicalization (RDFC-1.0) explodes: "poison graphs".

Each is an OB 3.0 credential with an `eddsa-rdfc-2022` proof whose `did:key` resolves offline, so the
importer reaches canonicalization; the shape of its blank nodes is what makes the work explode. Shared by
the importer's tests and `bench/import_benchmark.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from ebackpack.domain.credentials.jsonld import CREDENTIALS_V2, OB3_CONTEXT
from ebackpack.domain.credentials.keys import SigningKey

Nodes = list[dict[str, Any]]
# Full IRIs: the OB 3.0 context is protected and drops terms it does not define.
KNOWS, NEXT, NOTE = "https://schema.org/knows", "https://schema.org/nextItem", "https://schema.org/comment"
RELATED = "https://schema.org/isRelatedTo"


def clique(size: int) -> Nodes:
    """Every blank node points at every other with the same predicate: all look alike, and telling
    them apart tries permutations of the others (factorial work)."""
    return [
        {"@id": f"_:n{i}", KNOWS: [{"@id": f"_:n{j}"} for j in range(size) if j != i]} for i in range(size)
    ]


def chain(length: int) -> Nodes:
    """A ring of identical blank nodes: every node's first-degree hash is the same."""
    return [{"@id": f"_:n{i}", NEXT: {"@id": f"_:n{(i + 1) % length}"}} for i in range(length)]


def components(count: int, size: int = 4) -> Nodes:
    """Many identical small cliques (isomorphic components)."""
    nodes: Nodes = []
    for c in range(count):
        ids = [f"_:c{c}n{i}" for i in range(size)]
        nodes += [{"@id": a, KNOWS: [{"@id": b} for b in ids if b != a]} for a in ids]
    return nodes


def wide(count: int) -> Nodes:
    """Many blank nodes that are each easy (distinct values): the count alone is the cost."""
    return [{"@id": f"_:w{i}", NOTE: f"entry {i}"} for i in range(count)]


SHAPES: dict[str, Callable[[], Nodes]] = {
    "clique-12": lambda: clique(12),
    "clique-40": lambda: clique(40),
    "chain-3000": lambda: chain(3000),
    "components-400x4": lambda: components(400, 4),
    "components-30x5": lambda: components(30, 5),
    "blank-nodes-5000": lambda: wide(5000),
}


def _nested(nodes: Nodes, per_array: int = 400) -> Nodes:
    """The nodes in arrays of at most `per_array` items, nested, as an attacker who knows that long
    arrays are refused would send them."""
    if len(nodes) <= per_array:
        return nodes
    return [{RELATED: nodes[i : i + per_array]} for i in range(0, len(nodes), per_array)]


def poisoned_credential(nodes: Nodes, key: SigningKey | None = None) -> bytes:
    """An OB 3.0 credential carrying `nodes` in its subject, with a proof (a dummy signature: the
    importer canonicalizes before it can compare signatures)."""
    key = key or SigningKey("ed25519-1", "Ed25519", ed25519.Ed25519PrivateKey.generate())
    did = f"did:key:{key.public_multibase()}"
    credential = {
        "@context": [CREDENTIALS_V2, OB3_CONTEXT],
        "id": "urn:uuid:6f1c1f7e-4a43-4a59-9a55-0c4a3f0e2b11",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": "A credential whose blank nodes explode canonicalization",
        "issuer": {"id": did, "type": ["Profile"], "name": "Poison Issuer"},
        "validFrom": "2026-01-01T00:00:00Z",
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "achievement": {
                "id": "urn:uuid:5d0b9c57-2f5a-4a34-8d2c-0f6f0e9d7a21",
                "type": ["Achievement"],
                "name": "Poison",
                "criteria": {"narrative": "none"},
            },
            RELATED: _nested(nodes),
        },
        "proof": {
            "type": "DataIntegrityProof",
            "cryptosuite": "eddsa-rdfc-2022",
            "created": "2026-01-01T00:00:00Z",
            "proofPurpose": "assertionMethod",
            "verificationMethod": f"{did}#{key.public_multibase()}",
            "proofValue": "z" + "1" * 86,
        },
    }
    return json.dumps(credential, separators=(",", ":")).encode()
