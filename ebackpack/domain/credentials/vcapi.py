"""The VC-API's two operations on W3C Verifiable Credentials 2.0, pure (the backpack's vcapi.py is the
HTTP side): sign a credential a trusted client gives us (`issue`), and check one anyone shows us
(`verify`): the data model, the validity period, the eddsa-rdfc-2022 proof by a key of its issuer (a
did:key, or a key of ours) and its Bitstring Status List entries.

Documents from outside are canonicalized with bounds (`jsonld.canonize_untrusted`), and only bundled
JSON-LD contexts are used: nothing is fetched.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from . import dataintegrity
from .datamodel import problems
from .jsonld import CanonicalizationRefused, UnknownContextError, canonize_untrusted
from .keys import SigningKey
from .multikey import MultikeyError, multikey_to_jwk

STATUS_ENTRY = "BitstringStatusListEntry"
# (status list credential URL, index, purpose) -> whether the bit is set; None: not a list we can read
StatusLookup = Callable[[str, int, str], bool | None]
KeyLookup = Callable[[str], ed25519.Ed25519PublicKey | None]


class InvalidCredential(ValueError):
    """The credential breaks the data model or is not ours to sign: `problems` says how."""

    def __init__(self, found: list[str]) -> None:
        super().__init__("; ".join(found))
        self.problems = found


@dataclass
class Verification:
    checks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return not self.errors

    def as_json(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "checks": self.checks,
            "warnings": self.warnings,
            "errors": self.errors,
        }


def issuer_id(credential: dict[str, Any]) -> object:
    issuer = credential.get("issuer")
    return issuer.get("id") if isinstance(issuer, dict) else issuer


def did_key_method(key: SigningKey) -> str:
    """Our Ed25519 key as a did:key verification method (resolvable by anyone, offline)."""
    multibase = key.public_multibase()
    return f"did:key:{multibase}#{multibase}"


def issue(credential: object, methods: dict[str, str], key: SigningKey, created: str) -> dict[str, Any]:
    """`credential` signed with an eddsa-rdfc-2022 proof. `methods` maps each issuer id we sign as (our
    did:web, our key's did:key) to its verification method. Raises InvalidCredential."""
    found = problems(credential)
    if found:
        raise InvalidCredential(found)
    assert isinstance(credential, dict)
    if "proof" in credential:
        raise InvalidCredential(["the credential has a proof already: send it unsigned"])
    method = methods.get(str(issuer_id(credential)))
    if method is None:
        raise InvalidCredential([f"the issuer must be one of ours: {', '.join(methods)}"])
    unsigned = copy.deepcopy(credential)
    options = dataintegrity.proof_options(unsigned, method, created)
    try:
        canonical = (canonize_untrusted(options), canonize_untrusted(unsigned))
    except (CanonicalizationRefused, UnknownContextError) as exc:
        raise InvalidCredential([str(exc)]) from None
    return dataintegrity.sign(unsigned, key, method, created, canonical=canonical)


def verify(credential: object, our_key: KeyLookup, status: StatusLookup, now: datetime) -> Verification:
    result = Verification(errors=problems(credential))
    if result.errors:
        return result
    assert isinstance(credential, dict)
    _validity(credential, now, result)
    _proof(credential, our_key, result)
    if result.verified:
        _status(credential, status, result)
    return result


def _validity(credential: dict[str, Any], now: datetime, result: Verification) -> None:
    starts, ends = credential.get("validFrom"), credential.get("validUntil")
    if isinstance(starts, str) and datetime.fromisoformat(starts.replace("Z", "+00:00")) > now:
        result.errors.append(f"not valid yet: valid from {starts}")
    if isinstance(ends, str) and datetime.fromisoformat(ends.replace("Z", "+00:00")) < now:
        result.errors.append(f"expired: valid until {ends}")


def _proof(credential: dict[str, Any], our_key: KeyLookup, result: Verification) -> None:
    proofs = credential.get("proof")
    proof = proofs[0] if isinstance(proofs, list) and len(proofs) == 1 else proofs
    if not isinstance(proof, dict):
        result.errors.append("the credential has no proof (one eddsa-rdfc-2022 Data Integrity proof)")
        return
    if proof.get("proofPurpose") != "assertionMethod":
        result.errors.append("the proof's purpose must be assertionMethod")
        return
    method = str(proof.get("verificationMethod", ""))
    if method.split("#")[0] != issuer_id(credential):
        result.errors.append(f"the proof's key {method} is not one of the issuer {issuer_id(credential)}")
        return
    try:
        dataintegrity.verify(credential, lambda m: _did_key(m) or our_key(m), canonize_untrusted)
    except dataintegrity.ProofError as exc:
        result.errors.append(f"proof: {exc}")
    except (CanonicalizationRefused, UnknownContextError) as exc:
        result.errors.append(str(exc))
    else:
        result.checks.append("proof")


def _did_key(method: str) -> ed25519.Ed25519PublicKey | None:
    if not method.startswith("did:key:"):
        return None
    try:
        jwk = multikey_to_jwk(method.removeprefix("did:key:").split("#")[0])
    except MultikeyError:
        return None
    if jwk.get("crv") != "Ed25519":
        return None
    return ed25519.Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(jwk["x"] + "=="))


def _status(credential: dict[str, Any], status: StatusLookup, result: Verification) -> None:
    entries = credential.get("credentialStatus")
    listed = entries if isinstance(entries, list) else [entries] if entries else []
    for entry in listed:
        kind = entry.get("type") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or kind != STATUS_ENTRY:
            result.warnings.append(f"status of type {kind!r} not checked")
            continue
        url, index = entry.get("statusListCredential"), entry.get("statusListIndex")
        purpose = entry.get("statusPurpose")
        if not isinstance(url, str) or not str(index).isdigit() or not isinstance(purpose, str):
            result.errors.append(
                "a BitstringStatusListEntry needs statusListCredential, statusListIndex and statusPurpose"
            )
            continue
        is_set = status(url, int(str(index)), purpose)
        if is_set is None:
            result.warnings.append(f"status list {url} not checked: not one of ours, and nothing is fetched")
        elif is_set:
            result.errors.append(f"status: {purpose}")
        else:
            result.checks.append(f"status: {purpose}")
