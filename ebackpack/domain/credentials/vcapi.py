"""The VC-API's two operations on W3C Verifiable Credentials 2.0, pure (the backpack's vcapi.py is the
HTTP side): sign a credential a trusted client gives us (`issue`), and check one anyone shows us
(`verify`): the data model, the validity period, the eddsa-rdfc-2022 proof by a key of its issuer (a
did:key, or a key of ours) and its Bitstring Status List entries.

Documents from outside are canonicalized with bounds (`jsonld.canonize_untrusted`), and only bundled
JSON-LD contexts are used: nothing is fetched.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from . import dataintegrity
from .datamodel import (
    credentials_of,
    is_enveloped,
    presentation_problems,
    problems,
    validity_names,
    validity_period,
    version,
)
from .jsonld import DATA_INTEGRITY_V2, CanonicalizationRefused, UnknownContextError, canonize_untrusted
from .keys import SigningKey
from .multikey import MultikeyError, ed25519_public_key, multikey_to_jwk

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
    return _id_of(credential.get("issuer"))


def _id_of(party: object) -> object:
    """An issuer's or holder's id: the URL itself, or the object's `id`."""
    return party.get("id") if isinstance(party, dict) else party


def _by(methods: list[str], controller: object) -> bool:
    """Whether one of the verification methods is a key of `controller` (the DID before the `#`)."""
    return any(method.split("#")[0] == controller for method in methods)


def did_key_method(key: SigningKey) -> str:
    """Our Ed25519 key as a did:key verification method (resolvable by anyone, offline)."""
    multibase = key.public_multibase()
    return f"did:key:{multibase}#{multibase}"


def issue(
    credential: object,
    methods: dict[str, str],
    key: SigningKey,
    created: str,
    status_entry: Callable[[str], dict[str, str]] | None = None,
) -> dict[str, Any]:
    """`credential` signed with an eddsa-rdfc-2022 proof. `methods` maps each issuer id we sign as (our
    did:web, our key's did:key) to its verification method. `status_entry(issuer)` gives the
    `credentialStatus` to add, once the credential is found valid. Raises InvalidCredential."""
    found = problems(credential)
    if found:
        raise InvalidCredential(found)
    assert isinstance(credential, dict)
    if "proof" in credential:
        raise InvalidCredential(["the credential has a proof already: send it unsigned"])
    issuer = str(issuer_id(credential))
    method = methods.get(issuer)
    if method is None:
        raise InvalidCredential([f"the issuer must be one of ours: {', '.join(methods)}"])
    unsigned = copy.deepcopy(credential)
    if status_entry is not None:
        if "credentialStatus" in unsigned:
            raise InvalidCredential(["the credential has a credentialStatus: do not ask for another"])
        unsigned["credentialStatus"] = status_entry(issuer)
    contexts = unsigned["@context"] if isinstance(unsigned["@context"], list) else [unsigned["@context"]]
    if version(unsigned) == "1.1" and DATA_INTEGRITY_V2 not in contexts:
        unsigned["@context"] = [*contexts, DATA_INTEGRITY_V2]  # VC 1.1 lacks the proof's terms
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
    starts_name, ends_name = validity_names(credential)
    starts, ends = validity_period(credential)
    if starts is not None and starts > now:
        result.errors.append(f"not valid yet: valid from {credential[starts_name]}")
    if ends is not None and ends < now:
        result.errors.append(f"expired: valid until {credential[ends_name]}")


def _proof(credential: dict[str, Any], our_key: KeyLookup, result: Verification) -> None:
    """Every proof of a set or chain must verify, each for assertionMethod, and one must be by a key of
    the issuer (others may be witnesses' or endorsers')."""
    proofs = credential.get("proof")
    listed = proofs if isinstance(proofs, list) else [proofs] if proofs is not None else []
    if not listed:
        result.errors.append("the credential has no proof (an eddsa-rdfc-2022 Data Integrity proof)")
        return
    if any(not isinstance(p, dict) or p.get("proofPurpose") != "assertionMethod" for p in listed):
        result.errors.append("each proof's purpose must be assertionMethod")
        return
    methods = _proof_methods(credential, our_key, result, "proof")
    if methods is None:
        return
    issuer = issuer_id(credential)
    if not _by(methods, issuer):
        result.errors.append(f"no proof is by a key of the issuer {issuer}")
        return
    result.checks.append("proof")


def _proof_methods(
    document: dict[str, Any], our_key: KeyLookup, result: Verification, label: str
) -> list[str] | None:
    """The verification methods of every proof once all verify (by a did:key or a key of ours); None,
    with the error noted, otherwise."""

    def key_for(method: str) -> ed25519.Ed25519PublicKey | None:
        return _did_key(method) or our_key(method)

    try:
        return dataintegrity.verify_all(document, key_for, canonize_untrusted)
    except dataintegrity.ProofError as exc:
        result.errors.append(f"{label}: {exc}")
    except (CanonicalizationRefused, UnknownContextError) as exc:
        result.errors.append(str(exc))
    return None


def _did_key(method: str) -> ed25519.Ed25519PublicKey | None:
    if not method.startswith("did:key:"):
        return None
    try:
        return ed25519_public_key(multikey_to_jwk(method.removeprefix("did:key:").split("#")[0]))
    except (MultikeyError, TypeError, KeyError, ValueError):  # not an Ed25519 did:key
        return None


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


def verify_presentation(
    presentation: object,
    our_key: KeyLookup,
    status: StatusLookup,
    now: datetime,
    challenge: object = None,
    domain: object = None,
) -> Verification:
    """The presentation's data model, its proof if it has one (for authentication, by the holder's key,
    with the verifier's challenge and domain), and every credential it holds, as `verify` checks one.
    An enveloped credential (a data: URL) is not opened: a warning says so."""
    result = Verification(errors=presentation_problems(presentation))
    if result.errors:
        return result
    assert isinstance(presentation, dict)
    if presentation.get("proof") is not None:
        _presentation_proof(presentation, our_key, challenge, domain, result)
    elif challenge is not None:
        result.errors.append("the verifier asked for a challenge: the presentation must be signed")
    for index, credential in enumerate(credentials_of(presentation)):
        if is_enveloped(credential):
            result.warnings.append(f"verifiableCredential[{index}]: an enveloped credential is not opened")
            continue
        held = verify(credential, our_key, status, now)
        result.errors += [f"verifiableCredential[{index}]: {error}" for error in held.errors]
        result.warnings += [f"verifiableCredential[{index}]: {warning}" for warning in held.warnings]
        result.checks += [f"verifiableCredential[{index}]: {check}" for check in held.checks]
    return result


def _presentation_proof(
    presentation: dict[str, Any], our_key: KeyLookup, challenge: object, domain: object, result: Verification
) -> None:
    proofs = presentation["proof"]
    listed = proofs if isinstance(proofs, list) else [proofs]
    for proof in listed:
        if not isinstance(proof, dict) or proof.get("proofPurpose") != "authentication":
            result.errors.append("a presentation's proof is for authentication")
            return
        if challenge is not None and proof.get("challenge") != challenge:
            result.errors.append("the presentation's proof does not carry the verifier's challenge")
            return
        if domain is not None and proof.get("domain") != domain:
            result.errors.append("the presentation's proof is for another domain")
            return

    methods = _proof_methods(presentation, our_key, result, "presentation proof")
    if methods is None:
        return
    holder_id = _id_of(presentation.get("holder"))
    if holder_id is not None and not _by(methods, holder_id):
        result.errors.append(f"no proof of the presentation is by a key of its holder {holder_id}")
        return
    result.checks.append("presentation proof")
