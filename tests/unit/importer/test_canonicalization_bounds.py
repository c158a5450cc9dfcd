"""Canonicalization bombs (RDFC-1.0 "poison graphs") are refused by shape or by the algorithm's step
budget, with a reason; real credentials canonicalize exactly as before (the issuer signs with the same
pyld algorithm, and a bounded run must give the same bytes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ebackpack.domain.credentials import dataintegrity
from ebackpack.domain.credentials.jsonld import (
    CanonBounds,
    CanonicalizationRefused,
    canonize,
    canonize_untrusted,
)
from ebackpack.domain.credentials.keys import SigningKey
from services.importer.domain import ImportContext, ImportRejected, Learner
from services.importer.pipeline import import_bytes
from tests.hostile_jsonld import NOTE, RELATED, SHAPES, chain, clique, components, poisoned_credential, wide

EXTERNAL = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "external"
CONTEXT = ImportContext(learner=Learner(email="learner@example.org"))


def without_proof(data: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(data)
    document.pop("proof")
    return document


@pytest.mark.timeout(60)  # before the bounds, the clique and chain shapes ran for minutes or for ever
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_canonicalization_bomb_is_rejected_with_the_reason(shape: str) -> None:
    upload = poisoned_credential(SHAPES[shape]())

    with pytest.raises(ImportRejected) as refused:
        import_bytes(upload, CONTEXT)

    reason = str(refused.value)
    assert reason.endswith("rejected")
    assert any(
        word in reason for word in ("canonicalization bomb", "blank nodes", "statements", "JSON values")
    ), reason


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("nodes", "bound"),
    [
        (clique(8), "steps"),  # passes the shape checks: stopped by the step budget
        (chain(400), "steps|recursion"),
        (components(30, 5), "steps"),
        ([{"@id": "_:long", NOTE: [f"item {i}" for i in range(600)]}], "array of 600 items"),
        (wide(1300), "more than 5,000 JSON values"),
        (
            [{"@context": {f"t{i}": f"https://example.org/t{i}" for i in range(6000)}, "@id": "_:c"}],
            "more than 5,000 JSON values",
        ),
        ([{RELATED: {"@list": [f"item {i}" for i in range(400)]}} for _ in range(3)], "1,2.. blank nodes"),
    ],
)
def test_shapes_under_the_size_bounds_are_stopped_by_the_work_bound(nodes: list[Any], bound: str) -> None:
    with pytest.raises(CanonicalizationRefused, match=bound):
        canonize_untrusted(without_proof(poisoned_credential(nodes)))


def test_a_deep_chain_is_refused_before_python_runs_out_of_recursion() -> None:
    bounds = CanonBounds(max_work=10**12, max_degree=10**6, max_blank_nodes=10**6, max_values=10**6)
    with pytest.raises(CanonicalizationRefused, match="recursion deeper than"):
        canonize_untrusted(without_proof(poisoned_credential(chain(300))), bounds)


@pytest.mark.parametrize(
    "name",
    [
        "complete.json",
        "simple.json",
        "endorsement-valid.json",
        "simple-eddsa-2022.json",
        "simple-did-key-method.json",
    ],
)
def test_real_credentials_canonicalize_to_the_same_bytes_within_the_bounds(name: str) -> None:
    document = json.loads((EXTERNAL / "ob3-1edtech" / name).read_text())
    document.pop("proof", None)
    assert canonize_untrusted(document) == canonize(document)


def test_a_harmless_graph_of_blank_nodes_is_canonicalized_as_before() -> None:
    document = without_proof(poisoned_credential(clique(4) + wide(300)))
    assert canonize_untrusted(document) == canonize(document)


def test_credentials_we_sign_still_verify_through_the_bounded_path() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = SigningKey("ed25519-1", "Ed25519", ed25519.Ed25519PrivateKey.generate())
    did = f"did:key:{key.public_multibase()}"
    unsigned = without_proof(poisoned_credential(wide(20), key)) | {
        "issuer": {"id": did, "type": ["Profile"], "name": "Harmless"}
    }
    signed = dataintegrity.sign(unsigned, key, f"{did}#{key.public_multibase()}", "2026-01-01T00:00:00Z")

    result = import_bytes(json.dumps(signed).encode(), CONTEXT)

    assert result.verification.status.value == "signature valid but issuer not known"
