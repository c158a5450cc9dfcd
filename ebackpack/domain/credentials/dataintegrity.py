"""Data Integrity proofs with the `eddsa-rdfc-2022` cryptosuite (W3C VC Data Integrity EdDSA, sec. 3.3).

hash = SHA-256(canonical proof options) || SHA-256(canonical document), signed with Ed25519; the proof
value is multibase base58btc (`z...`). Canonicalization is RDFC-1.0 (URDNA2015) over bundled contexts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import base58
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from .jsonld import canonize
from .keys import SigningKey

CRYPTOSUITE = "eddsa-rdfc-2022"


class ProofError(ValueError):
    """The proof is missing, malformed or does not match the document."""


def proof_options(document: dict[str, Any], verification_method: str, created: str) -> dict[str, Any]:
    return {
        "@context": document["@context"],
        "type": "DataIntegrityProof",
        "cryptosuite": CRYPTOSUITE,
        "created": created,
        "verificationMethod": verification_method,
        "proofPurpose": "assertionMethod",
    }


def hash_data(canonical_options: str, canonical_document: str) -> bytes:
    return (
        hashlib.sha256(canonical_options.encode()).digest()
        + hashlib.sha256(canonical_document.encode()).digest()
    )


def sign(
    unsigned: dict[str, Any],
    key: SigningKey,
    verification_method: str,
    created: str,
    canonical: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Returns a copy of the document with a one-element `proof` array (the OB 3.0 schema wants a list).

    `canonical` = (proof options, document) already canonicalized by the caller (see fastcanon).
    """
    if not isinstance(key.private_key, ed25519.Ed25519PrivateKey):
        raise ProofError(f"{CRYPTOSUITE} needs an Ed25519 key, {key.kid} is {key.algorithm}")
    options = proof_options(unsigned, verification_method, created)
    options_nq, document_nq = canonical or (canonize(options), canonize(unsigned))
    signature = key.private_key.sign(hash_data(options_nq, document_nq))
    proof = {k: v for k, v in options.items() if k != "@context"}
    proof["proofValue"] = "z" + base58.b58encode(signature).decode()
    return unsigned | {"proof": [proof]}


def verify(
    document: dict[str, Any],
    public_key_for: Callable[[str], ed25519.Ed25519PublicKey | None],
    canon: Callable[[dict[str, Any]], str] = canonize,
) -> str:
    """Checks the single eddsa-rdfc-2022 proof; returns its verification method or raises ProofError.
    `canon`: `jsonld.canonize_untrusted` for a document from outside (bounded)."""
    proofs = document.get("proof")
    if isinstance(proofs, list) and len(proofs) != 1:
        raise ProofError(f"expected one {CRYPTOSUITE} proof")
    return verify_all(document, public_key_for, canon)[0]


def verify_all(
    document: dict[str, Any],
    public_key_for: Callable[[str], ed25519.Ed25519PublicKey | None],
    canon: Callable[[dict[str, Any]], str] = canonize,
) -> list[str]:
    """Checks every proof of a proof set or chain (VC Data Integrity sec. 4.6): a proof naming
    `previousProof` is checked over the document holding those proofs. Returns the verification methods
    in order, or raises ProofError."""
    proofs = document.get("proof")
    given: list[Any] = proofs if isinstance(proofs, list) else [proofs]
    listed: list[dict[str, Any]] = [proof for proof in given if isinstance(proof, dict)]
    if not listed or len(listed) != len(given):
        raise ProofError(f"expected one or more {CRYPTOSUITE} proofs")
    unsigned = {k: v for k, v in document.items() if k != "proof"}
    by_id = {proof["id"]: proof for proof in listed if isinstance(proof.get("id"), str)}
    methods = []
    for proof in listed:
        previous = proof.get("previousProof")
        named = [previous] if isinstance(previous, str) else previous if previous is not None else []
        if not isinstance(named, list) or not all(isinstance(n, str) for n in named):
            raise ProofError("previousProof must be a string or a list of strings")
        missing = [n for n in named if n not in by_id]
        if missing:
            raise ProofError(f"previousProof {', '.join(missing)} is not in the proof set")
        chained = unsigned | {"proof": [by_id[n] for n in named]} if named else unsigned
        methods.append(_verify_one(chained, proof, document["@context"], public_key_for, canon))
    return methods


def _verify_one(
    unsigned: dict[str, Any],
    proof: dict[str, Any],
    context: Any,
    public_key_for: Callable[[str], ed25519.Ed25519PublicKey | None],
    canon: Callable[[dict[str, Any]], str],
) -> str:
    if proof.get("type") != "DataIntegrityProof" or proof.get("cryptosuite") != CRYPTOSUITE:
        found = f"{proof.get('type')} / {proof.get('cryptosuite')}"
        raise ProofError(f"expected one DataIntegrityProof of the {CRYPTOSUITE} cryptosuite, not {found}")
    method = str(proof.get("verificationMethod", ""))
    public_key = public_key_for(method)
    if public_key is None:
        raise ProofError(f"unknown verification method {method}")
    value = str(proof.get("proofValue", ""))
    if not value.startswith("z"):
        raise ProofError("proofValue is not multibase base58btc")
    options = {"@context": context} | {k: v for k, v in proof.items() if k != "proofValue"}
    try:
        public_key.verify(base58.b58decode(value[1:]), hash_data(canon(options), canon(unsigned)))
    except (InvalidSignature, ValueError):
        raise ProofError("signature does not match the document") from None
    return method
