"""OB 3.0 JSON with a Data Integrity proof (`eddsa-rdfc-2022`, `eddsa-2022`, `Ed25519Signature2020`): the
signature over the canonicalized document, against the key its verification method names."""

from __future__ import annotations

from typing import Any

import base58
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from ebackpack.domain.credentials.dataintegrity import hash_data
from ebackpack.domain.credentials.multikey import ed25519_public_key
from services.importer.canon import canonize  # bounded: a canonicalization bomb is rejected
from services.importer.domain import (
    Attestation,
    ImportContext,
    ImportRejected,
    SourceFormat,
    VerificationStatus,
    say,
)
from services.importer.formats.keys import KeyUnavailable, ResolvedKey, resolve
from services.importer.formats.openbadges.fields import issuer_id_of, load_json_object
from services.importer.formats.openbadges.ob3_credential import ob3_result
from services.importer.formats.openbadges.tokens import key_kind
from services.importer.formats.openbadges.verdict import Check, key_standing

ED25519_SUITES = {"eddsa-rdfc-2022", "eddsa-2022"}


def _supported_proof(credential: dict[str, Any]) -> dict[str, Any] | None:
    proofs = credential.get("proof")
    for proof in proofs if isinstance(proofs, list) else [proofs]:
        if isinstance(proof, dict) and (
            proof.get("cryptosuite") in ED25519_SUITES or proof.get("type") == "Ed25519Signature2020"
        ):
            return proof
    return None


def _data_integrity_check(credential: dict[str, Any], ctx: ImportContext) -> Check:
    """The proof's signature over the canonicalized credential, then the standing of the key that made it."""
    proof = _supported_proof(credential)
    if proof is None:
        what = (
            say("the credential has no proof")
            if not credential.get("proof")
            else say("the credential has a proof type we cannot check")
        )
        return Check(VerificationStatus.NOT_VERIFIABLE, "none", what)
    suite = str(proof.get("cryptosuite") or proof.get("type"))
    method = f"Data Integrity {suite}"
    try:
        key = resolve(str(proof.get("verificationMethod", "")), ctx)
    except KeyUnavailable as exc:
        return Check(VerificationStatus.NOT_VERIFIABLE, method, exc.reason)
    public_key = _proof_key(key, suite, method)
    if isinstance(public_key, Check):
        return public_key
    data = _signed_data(credential, proof, method)
    if isinstance(data, Check):
        return data
    value = str(proof.get("proofValue", ""))
    try:
        public_key.verify(base58.b58decode(value[1:]) if value.startswith("z") else b"", data)
    except (InvalidSignature, ValueError):
        return Check(
            VerificationStatus.INVALID,
            method,
            say(
                "the signature does not match the document: it was changed after signing or signed "
                "with another key"
            ),
        )
    return key_standing(key, issuer_id_of(credential.get("issuer")), ctx, method)


def _proof_key(key: ResolvedKey, suite: str, method: str) -> ed25519.Ed25519PublicKey | Check:
    """The Ed25519 key the proof needs, or the check that the verification method cannot have made it."""
    try:
        return ed25519_public_key(key.jwk)
    except TypeError:
        return Check(
            VerificationStatus.INVALID,
            method,
            say(
                "the proof ({suite}) needs an Ed25519 key, but its verification method is a {key} key",
                suite=suite,
                key=key_kind(key.jwk),
            ),
        )
    except (KeyError, ValueError):
        return Check(VerificationStatus.INVALID, method, say("the verification method's key is malformed"))


def _signed_data(credential: dict[str, Any], proof: dict[str, Any], method: str) -> bytes | Check:
    """What the proof signs: the hashes of its canonicalized options and of the credential without it."""
    unsigned = {k: v for k, v in credential.items() if k != "proof"}
    options = {"@context": credential.get("@context")} | {k: v for k, v in proof.items() if k != "proofValue"}
    try:
        return hash_data(canonize(options), canonize(unsigned))
    except ImportRejected:  # over the canonicalization budget: the whole upload is refused with it
        raise
    except Exception as exc:  # pyld raises its own error types, wrapping ours (unknown context)
        return Check(
            VerificationStatus.NOT_VERIFIABLE,
            method,
            say("the document cannot be canonicalized: {error}", error=str(exc)[:300]),
        )


def parse_ob3_json(
    text: str, ctx: ImportContext, source: SourceFormat = SourceFormat.OB3_JSON
) -> Attestation:
    credential = load_json_object(text, "Open Badges 3.0 credential")
    return ob3_result(credential, _data_integrity_check(credential, ctx), source, ctx, text)
