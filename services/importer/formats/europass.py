"""Europass Digital Credentials (EDC): a JAdES-sealed EDC JSON-LD credential, normalized.

The EU's issuing tools seal the credential as a JWS in JSON serialization whose payload is the credential
itself, unencoded (RFC 7797, b64=false), with the eSeal certificate chain in `x5c` and the signing time in
`sigT`. We check the signature, the certificate's validity at the signing time and the links of the x5c
chain. Whether the certificate leads to a qualified trust service on the EU trust list (LOTL) and whether
it is revoked (OCSP/CRL) needs trust anchors and the network: the reason says so, and only
``ctx.trusted_issuers`` turns a valid seal into ``verified``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from services.importer.domain import (
    Attestation,
    ImportContext,
    ImportRejected,
    IssuerRef,
    Learner,
    RecipientMatch,
    Said,
    SourceFormat,
    Verification,
    VerificationStatus,
    email_matches,
    has_expired,
    not_yet_valid,
    say,
    utf8_text,
)

Json = dict[str, Any]

EDC_TYPE = "EuropeanDigitalCredential"
EDC_VOCABULARY = "data.europa.eu/snb"  # the EDC contexts and controlled vocabularies live under it
FALLBACK_TITLE = "Europass Digital Credential"

_DIGESTS: dict[str, hashes.HashAlgorithm] = {
    "256": hashes.SHA256(),
    "384": hashes.SHA384(),
    "512": hashes.SHA512(),
}
_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
_SUPPORTED = {f"{family}{size}" for family in ("RS", "PS", "ES") for size in _DIGESTS} | {"EdDSA"}
# JAdES header parameters that describe the signature without changing what was signed (sigD would:
# it detaches the payload).
_UNDERSTOOD_CRIT = frozenset(
    {"b64", "sigT", "x5t#o", "sigX5ts", "srCms", "sigPl", "srAts", "adoTst", "sigPId"}
)
NOT_CHECKED = (
    "Not checked, as that needs trust anchors and the network: the EU trust list (LOTL), the "
    "certificate's revocation (OCSP/CRL) and any revocation status list of the credential."
)
_SENTENCES = "{first} {second}"  # reasons here are sentences, joined by a space
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_DURATION = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)


@dataclass(frozen=True)
class _Jws:
    header: Json
    signature: str
    signing_input: bytes  # RFC 7797: ASCII(protected) '.' payload, the payload as received
    credential_text: str
    count: int  # signatures in the file; only the first is checked


class _SealFailure(Exception):
    def __init__(self, status: VerificationStatus, reason: Said) -> None:
        super().__init__(reason.en)
        self.status = status
        self.reason = reason


def _invalid(reason: Said) -> _SealFailure:
    return _SealFailure(VerificationStatus.INVALID, reason)


def _unverifiable(reason: Said) -> _SealFailure:
    return _SealFailure(VerificationStatus.NOT_VERIFIABLE, reason)


def _sentences(*parts: Said) -> Said:
    result = parts[0]
    for part in parts[1:]:
        result = say(_SENTENCES, first=result, second=part) if part.en else result
    return result


def looks_like_europass(document: Json) -> bool:
    """A cheap check on parsed JSON: a JWS (JSON serialization) carrying an EDC, or a bare EDC."""
    payload = document.get("payload")
    if isinstance(payload, str) and ("signatures" in document or "signature" in document):
        return _mentions_edc(payload)
    return _is_edc(document)


def parse_europass(data: bytes, ctx: ImportContext) -> Attestation:
    """Verifies the seal of an uploaded EDC and normalizes it; ImportRejected for anything malformed."""
    text = utf8_text(data)
    document = _json_object(text, "the file")
    jws = _read_jws(document) if _is_jws(document) else None
    credential = _json_object(jws.credential_text, "the JWS payload") if jws else document
    if not _is_edc(credential):
        raise ImportRejected(
            "not a Europass Digital Credential: neither an EDC context "
            f"({EDC_VOCABULARY}) nor the type {EDC_TYPE}"
        )
    return _attestation(credential, jws, text, ctx)


# --- the envelope -----------------------------------------------------------------------------------


def _is_jws(document: Json) -> bool:
    return any(key in document for key in ("payload", "signatures", "signature"))


def _mentions_edc(payload: str) -> bool:
    if not payload.lstrip().startswith("{"):  # b64=true: the payload is base64url-encoded
        try:
            payload = _b64url(payload).decode("utf-8", "replace")
        except ValueError:
            return False
    return EDC_TYPE in payload or EDC_VOCABULARY in payload


def _is_edc(document: Json) -> bool:
    contexts = [context for context in _items(document.get("@context")) if isinstance(context, str)]
    return EDC_TYPE in _items(document.get("type")) or any(EDC_VOCABULARY in c for c in contexts)


def _read_jws(document: Json) -> _Jws:
    payload = document.get("payload")
    if not isinstance(payload, str):
        raise ImportRejected("the JWS has no payload (a string holding the credential)")
    signatures = document.get("signatures", [document])  # flattened serialization: the one signature inline
    if not isinstance(signatures, list) or not signatures or not isinstance(signatures[0], dict):
        raise ImportRejected("the JWS 'signatures' member is not a non-empty list of signature objects")
    protected, signature = signatures[0].get("protected"), signatures[0].get("signature")
    if not isinstance(protected, str) or not isinstance(signature, str):
        raise ImportRejected("the JWS signature lacks its 'protected' header or its 'signature' value")
    header = _protected_header(protected)
    try:
        signing_input = f"{protected}.{payload}".encode()
    except UnicodeEncodeError:
        raise ImportRejected("the JWS payload holds characters that are not valid Unicode") from None
    return _Jws(header, signature, signing_input, _credential_text(header, payload), len(signatures))


def _protected_header(protected: str) -> Json:
    try:
        header = json.loads(_b64url(protected))
    except (ValueError, RecursionError) as error:  # JSON and UTF-8 decoding errors are ValueErrors
        raise ImportRejected(f"the JWS protected header is not base64url-encoded JSON: {error}") from None
    if not isinstance(header, dict):
        raise ImportRejected("the JWS protected header is not a JSON object")
    return header


def _credential_text(header: Json, payload: str) -> str:
    if header.get("b64") is False:  # RFC 7797: the payload is the credential as it is
        return payload
    try:
        return _b64url(payload).decode("utf-8")
    except ValueError:
        raise ImportRejected(
            "the JWS payload is not base64url-encoded UTF-8, and the header does not "
            "declare it unencoded (b64=false)"
        ) from None


# --- the seal ---------------------------------------------------------------------------------------


def _verify(
    jws: _Jws, ctx: ImportContext, expires_on: datetime | None, issuer_id: str | None
) -> Verification:
    alg = str(jws.header.get("alg") or "")
    method = f"JAdES seal ({alg or 'no algorithm'})"
    try:
        chain = _certificates(jws.header)
        method = f"JAdES seal ({alg}, x5c certificate '{_label(chain[0].subject)}')"
        facts = _check_seal(jws, alg, chain, _aware(ctx.now))
    except _SealFailure as failure:
        return Verification.of(failure.status, method, failure.reason)
    status, verdict = _verdict(chain[0], ctx, expires_on, issuer_id)
    return Verification.of(status, method, _sentences(verdict, facts, say(NOT_CHECKED)))


def _check_seal(jws: _Jws, alg: str, chain: list[x509.Certificate], now: datetime) -> Said:
    """Raises _SealFailure on the first problem; else describes what was established."""
    _check_critical(jws.header)
    _check_thumbprint(jws.header, chain[0])
    _verify_signature(alg, _public_key(chain[0]), _signature_bytes(jws.signature), jws.signing_input)
    signed_at, when = _signing_time(jws.header, now)
    _check_validity(chain[0], signed_at, when)
    more = say("The file holds {count} signatures; only the first was checked.", count=jws.count)
    return _sentences(
        say(
            "The {alg} signature matches the credential, and the seal certificate was valid at {when}.",
            alg=alg,
            when=when,
        ),
        _check_chain(chain),
        more if jws.count > 1 else Said("", ""),
    )


def _certificates(header: Json) -> list[x509.Certificate]:
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not x5c:
        raise _unverifiable(
            say(
                "The seal names no certificate (no x5c in its protected header), so the key "
                "that made it is unknown."
            )
        )
    try:
        return [x509.load_der_x509_certificate(base64.b64decode(entry, validate=True)) for entry in x5c]
    except (TypeError, ValueError) as error:
        raise _invalid(say("An x5c certificate cannot be read: {error}.", error=error)) from None


def _check_critical(header: Json) -> None:
    critical = header.get("crit", [])
    if not isinstance(critical, list) or not all(isinstance(name, str) for name in critical):
        raise _invalid(say("The header's 'crit' is not a list of names."))
    unknown = [name for name in critical if name not in _UNDERSTOOD_CRIT]
    if unknown:  # RFC 7515 4.1.11: a signature whose critical parameters we do not understand is not ours
        raise _unverifiable(
            say(
                "The seal depends on header parameters this importer does not understand: {names}.",
                names=", ".join(name[:40] for name in unknown[:5]),
            )
        )


def _check_thumbprint(header: Json, certificate: x509.Certificate) -> None:
    expected = header.get("x5t#S256")
    actual = base64.urlsafe_b64encode(certificate.fingerprint(hashes.SHA256())).rstrip(b"=").decode()
    if expected is not None and expected != actual:
        raise _invalid(
            say("The header's certificate thumbprint (x5t#S256) does not match the x5c certificate.")
        )


def _public_key(certificate: x509.Certificate) -> CertificatePublicKeyTypes:
    try:
        return certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise _unverifiable(say("The seal certificate's key type is not supported.")) from None


def _signature_bytes(signature: str) -> bytes:
    try:
        return _b64url(signature)
    except ValueError:
        raise _invalid(say("The signature value is not base64url.")) from None


def _verify_signature(alg: str, key: CertificatePublicKeyTypes, signature: bytes, signed: bytes) -> None:
    try:
        _verify_with(alg, key, signature, signed)
    except InvalidSignature:
        raise _invalid(_mismatch(alg, key, signature)) from None


def _verify_with(alg: str, key: CertificatePublicKeyTypes, signature: bytes, signed: bytes) -> None:
    digest = _DIGESTS.get(alg[2:])
    if alg in _SUPPORTED and alg[:2] in ("RS", "PS") and digest and isinstance(key, rsa.RSAPublicKey):
        # JWS PS*: MGF1 with the same hash, salt as long as the hash (RFC 7518 3.5)
        pss = padding.PSS(padding.MGF1(digest), digest.digest_size)
        key.verify(signature, signed, padding.PKCS1v15() if alg[:2] == "RS" else pss, digest)
    elif (
        alg in _CURVES
        and digest
        and isinstance(key, ec.EllipticCurvePublicKey)
        and key.curve.name == _CURVES[alg]
    ):
        key.verify(_der_ecdsa(signature, key.curve.key_size), signed, ec.ECDSA(digest))
    elif alg == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key.verify(signature, signed)
    elif alg in _SUPPORTED:
        raise _invalid(
            say(
                "The seal claims {alg}, which the certificate's {key} key cannot make.",
                alg=alg,
                key=_key_kind(key),
            )
        )
    elif alg == "none" or alg.startswith("HS"):
        raise _invalid(say("'{alg}' is not a seal: nothing ties it to the certificate's key.", alg=alg[:40]))
    else:
        raise _unverifiable(say("The seal algorithm '{alg}' is not supported.", alg=alg[:40]))


def _der_ecdsa(signature: bytes, key_size: int) -> bytes:
    """JWS carries ECDSA signatures as r || s of fixed size; cryptography wants DER."""
    size = (key_size + 7) // 8
    if len(signature) != 2 * size:
        raise _invalid(
            say(
                "The ECDSA signature has {length} bytes instead of {size}.",
                length=len(signature),
                size=2 * size,
            )
        )
    r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    return encode_dss_signature(r, s)


def _mismatch(alg: str, key: CertificatePublicKeyTypes, signature: bytes) -> Said:
    """Says, where the algorithm allows, whether the content or the signature was altered."""
    if alg.startswith("RS") and isinstance(key, rsa.RSAPublicKey):
        try:  # a PKCS#1 v1.5 signature opens with the key: then it is genuine, made for other content
            key.recover_data_from_signature(signature, padding.PKCS1v15(), None)
        except (InvalidSignature, ValueError):
            return say("The signature value is corrupt or was not made with the seal certificate's key.")
        return say(
            "The signature is genuine but was made for other content: the credential or its header "
            "was changed after sealing."
        )
    return say(
        "The signature does not match: the credential was changed after sealing, or the signature is "
        "corrupt or was made with another key."
    )


def _key_kind(key: CertificatePublicKeyTypes) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    return "RSA" if isinstance(key, rsa.RSAPublicKey) else type(key).__name__


def _signing_time(header: Json, now: datetime) -> tuple[datetime, Said]:
    stated = header.get("sigT")
    if stated is None:
        return now, say(
            "the time of import ({now}; the seal states no signing time)", now=f"{now:%Y-%m-%dT%H:%M:%SZ}"
        )
    signed_at = _date(stated)
    if signed_at is None:
        raise _invalid(say("The signing time (sigT) {stated} is not a date.", stated=repr(stated)[:80]))
    return signed_at, say("the signing time it states, {at} (sigT)", at=f"{signed_at:%Y-%m-%dT%H:%M:%SZ}")


def _check_validity(certificate: x509.Certificate, at: datetime, when: Said) -> None:
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if not start <= at <= end:
        raise _invalid(
            say(
                "The seal certificate was valid from {start} to {end}, not at {when}.",
                start=f"{start:%Y-%m-%d}",
                end=f"{end:%Y-%m-%d}",
                when=when,
            )
        )


def _check_chain(chain: list[x509.Certificate]) -> Said:
    for child, parent in pairwise(chain):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            raise _invalid(
                say(
                    "The x5c chain is broken: '{child}' is not issued and signed by '{parent}'.",
                    child=_label(child.subject),
                    parent=_label(parent.subject),
                )
            ) from None
    if len(chain) == 1:
        return say(
            "The x5c chain holds only the seal certificate (issued by '{issuer}').",
            issuer=_label(chain[0].issuer),
        )
    return say("Each x5c certificate is signed by the next, up to '{top}'.", top=_label(chain[-1].subject))


def seal_fingerprint(certificate: x509.Certificate) -> str:
    """How a seal is trusted: `sha256:<hex>` of its certificate. Names are not enough: without a trust
    list anyone can make a self-signed certificate with a trusted organisation's name."""
    return "sha256:" + certificate.fingerprint(hashes.SHA256()).hex()


def _verdict(
    certificate: x509.Certificate, ctx: ImportContext, expires_on: datetime | None, issuer_id: str | None
) -> tuple[VerificationStatus, Said]:
    if has_expired(expires_on, _aware(ctx.now)):
        return VerificationStatus.EXPIRED, say(
            "Expired on {date}; the seal itself is valid.", date=f"{expires_on:%Y-%m-%d}"
        )
    fingerprint = seal_fingerprint(certificate)
    if fingerprint in ctx.trusted_issuers:
        return VerificationStatus.VERIFIED, say(
            "Issuer trusted: the seal certificate {fingerprint} is trusted.", fingerprint=fingerprint
        )
    subject = certificate.subject.rfc4514_string()
    return VerificationStatus.ISSUER_UNKNOWN, say(
        "Issuer not known: the seal certificate '{subject}' ({fingerprint}) is not on our list of trusted "
        "seals; the credential names its issuer as '{issuer}'.",
        subject=subject,
        fingerprint=fingerprint,
        issuer=issuer_id or "unknown",
    )


def _unsigned() -> Verification:
    return Verification.of(
        VerificationStatus.NOT_VERIFIABLE,
        "none (unsigned EDC)",
        say(
            "No seal: the credential carries no JAdES signature, so nothing shows who "
            "issued it or that it is unchanged."
        ),
    )


def _not_yet_valid(credential: Json, verification: Verification, now: datetime) -> Verification:
    """A credential valid only from a future date is invalid (whatever its seal says), and says so."""
    for key in ("validFrom", "issuanceDate", "issued"):
        start = _first_date([credential.get(key)])
        if not_yet_valid(start, now) and verification.status is not VerificationStatus.INVALID:
            reason = say("Not valid yet: it is valid only from {start} ({field}).", start=start, field=key)
            return Verification.of(
                VerificationStatus.INVALID, verification.method, _sentences(reason, verification.said())
            )
    return verification


# --- the credential ---------------------------------------------------------------------------------


def _attestation(credential: Json, jws: _Jws | None, text: str, ctx: ImportContext) -> Attestation:
    subject = _node(credential.get("credentialSubject"))
    claims = _claims(subject)
    issuer = _issuer(credential)
    expires_on = _first_date(credential.get(key) for key in ("expirationDate", "validUntil"))
    recipient, recipient_detail = _recipient(subject, ctx.learner)
    return Attestation(
        source_format=SourceFormat.EUROPASS_EDC,
        title=_title(credential, claims),
        issuer=issuer,
        issued_on=_issued_on(credential, claims),
        expires_on=expires_on,
        description=_description(credential, claims),
        learning_outcomes=_learning_outcomes(claims),
        workload=_workload(claims),
        recipient=recipient,
        recipient_detail=recipient_detail,
        verification=_not_yet_valid(
            credential,
            _verify(jws, ctx, expires_on, issuer.identifier) if jws else _unsigned(),
            _aware(ctx.now),
        ),
        urls=_urls(credential),
        original_json=text,
    )


def _claims(subject: Json) -> list[Json]:
    # EDC 3 lists what is claimed (achievements, activities, assessments...) under hasClaim; EDC 2 under
    # achieved.
    return [claim for key in ("hasClaim", "achieved") for claim in _nodes(subject.get(key))]


def _title(credential: Json, claims: list[Json]) -> str:
    """The credential's own title, with the claim's when there is one that adds something."""
    own = _first_text(
        [
            _node(credential.get("displayParameter")).get("title"),
            credential.get("title"),
            credential.get("name"),
        ]
    )
    claimed = _unique(
        _first_text([claim.get("title"), _node(claim.get("specifiedBy")).get("title")]) for claim in claims
    )
    if own and len(claimed) == 1 and not _overlap(own, claimed[0]):
        return f"{own}: {claimed[0]}"
    return own or next(iter(claimed), FALLBACK_TITLE)


def _overlap(one: str, other: str) -> bool:
    return one.casefold() in other.casefold() or other.casefold() in one.casefold()


def _issuer(credential: Json) -> IssuerRef:
    issuer = credential.get("issuer")
    node = _node(issuer)
    names = [node.get(key) for key in ("legalName", "name", "altLabel", "prefLabel")]
    return IssuerRef(
        name=_first_text(names),
        url=next(iter(_web_urls(node.get("homepage"))), None),
        identifier=_str(issuer) or _str(node.get("id")),
    )


def _issued_on(credential: Json, claims: list[Json]) -> datetime | None:
    awarded = (_node(claim.get("awardedBy")).get("awardingDate") for claim in claims)
    return _first_date([*(credential.get(key) for key in ("issuanceDate", "issued", "validFrom")), *awarded])


def _description(credential: Json, claims: list[Json]) -> str | None:
    return _first_text(
        [
            credential.get("description"),
            *(claim.get("description") for claim in claims),
            *(_node(claim.get("specifiedBy")).get("description") for claim in claims),
        ]
    )


def _learning_outcomes(claims: list[Json]) -> list[str]:
    outcomes = (
        outcome
        for claim in claims
        for node in (claim, _node(claim.get("specifiedBy")))
        for key in ("learningOutcome", "learningOutcomes")
        for outcome in _nodes(node.get(key))
    )
    return _unique(
        _first_text([outcome.get("title"), outcome.get("name"), outcome.get("prefLabel")])
        for outcome in outcomes
    )


def _workload(claims: list[Json]) -> str | None:
    """Credit points and volume of learning of the first claim that states any, e.g. '5 ECTS, 45 hours'."""
    for claim in claims:
        spec = _node(claim.get("specifiedBy"))
        credits = [
            _credit(node)
            for source in (claim, spec)
            for key in ("creditReceived", "creditPoint")
            for node in _nodes(source.get(key))
        ]
        ects = spec.get("ectsCreditPoints")  # EDC 2
        volume = next(filter(None, map(_str, (claim.get("workload"), spec.get("volumeOfLearning")))), None)
        parts = _unique(
            [
                *credits,
                f"{ects} ECTS" if isinstance(ects, int | float | str) else None,
                _duration(volume) if volume else None,
            ]
        )
        if parts:
            return ", ".join(parts)
    return None


def _credit(node: Json) -> str | None:
    point = node.get("point")
    if not isinstance(point, int | float | str):
        return None
    framework = _node(node.get("framework"))
    unit = _first_text([framework.get("prefLabel"), framework.get("notation")]) or "credits"
    return f"{point} {unit}"


def _duration(value: str) -> str:
    """ISO 8601 durations (EDC's workload and volumeOfLearning) in words; anything else as stated."""
    match = _DURATION.fullmatch(value)
    amounts = match.groupdict().items() if match else ()
    parts = [f"{amount} {unit[:-1] if amount == '1' else unit}" for unit, amount in amounts if amount]
    return ", ".join(parts) or value


def _urls(credential: Json) -> list[str]:
    evidence = _nodes(credential.get("evidence"))
    sources = [
        credential.get("id"),
        credential.get("supplementaryDocument"),
        *(item.get(key) for item in evidence for key in ("evidenceTarget", "supportingDocument")),
    ]
    return _unique(url for source in sources for url in _web_urls(source))


def _web_urls(value: object) -> list[str]:
    """http(s) links of plain strings or WebResource nodes (contentURL, else id)."""
    candidates = (
        item if isinstance(item, str) else _node(item).get("contentURL") or _node(item).get("id")
        for item in _items(value)
    )
    return [url for url in candidates if isinstance(url, str) and url.startswith(("https://", "http://"))]


# --- the recipient ----------------------------------------------------------------------------------


def _recipient(subject: Json, learner: Learner) -> tuple[RecipientMatch, str]:
    emails = _subject_emails(subject)
    matched = next((email for email in emails if email_matches(learner.email, email, hashed=False)), None)
    if matched:
        return RecipientMatch.MATCH, f"The credential's e-mail {matched} is the learner's."
    subject_id = _subject_id(subject)
    if subject_id and subject_id in learner.identifiers:
        return RecipientMatch.MATCH, f"The credential's subject {subject_id} is an identifier of the learner."
    if emails:
        return (
            RecipientMatch.MISMATCH,
            f"The credential names {', '.join(emails)}, not the learner's e-mail {learner.email}.",
        )
    compared = ["The credential names no e-mail address"]
    if subject_id:
        compared.append(f"its subject {subject_id} is not among the learner's identifiers")
    if name := _text(subject.get("fullName")):
        compared.append(f"it names only '{name}'")
    return RecipientMatch.UNKNOWN, "; ".join(compared) + "."


def _subject_emails(subject: Json) -> list[str]:
    points = [subject, *_nodes(subject.get("contactPoint"))]
    boxes = [
        box for point in points for key in ("emailAddress", "email", "mbox") for box in _items(point.get(key))
    ]
    addresses = (_str(box) or _str(_node(box).get("id")) for box in boxes)
    return _unique(re.sub(r"(?i)^mailto:", "", address).strip() for address in addresses if address)


def _subject_id(subject: Json) -> str | None:
    subject_id = _str(subject.get("id"))
    # urn:epass:… ids are made up per document (urn:epass:person:1), never a lasting identifier.
    return None if subject_id is None or subject_id.startswith("urn:epass:") else subject_id


# --- JSON-LD values ---------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    """Display text of a string, a language map ({"en": ...}), JSON-LD value objects or a Note: English
    first, else the first language given."""
    if isinstance(value, dict) and "noteLiteral" in value:
        value = value["noteLiteral"]
    ranked = sorted(_tagged_texts(value), key=lambda pair: not _is_english(pair[0]))
    return next((text.strip() for _, text in ranked if text.strip()), None)


def _tagged_texts(value: object) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [("", value)]
    if isinstance(value, list):
        return [pair for item in value if not isinstance(item, list) for pair in _tagged_texts(item)]
    if not isinstance(value, dict):
        return []
    if "@value" in value:
        literal = value["@value"]
        return [(str(value.get("@language", "")), literal)] if isinstance(literal, str) else []
    if _is_node(value):
        return []
    return [
        (str(tag), text) for tag, texts in value.items() for text in _items(texts) if isinstance(text, str)
    ]


def _is_node(value: Json) -> bool:
    """An object with its own identity or type, not a language map (whose keys are language tags)."""
    return any(key in value for key in ("type", "@type", "@id")) or ":" in str(value.get("id", ""))


def _is_english(tag: str) -> bool:
    return tag.lower() == "en" or tag.lower().startswith("en-")


def _first_text(values: Iterable[object]) -> str | None:
    return next((text for value in values if (text := _text(value))), None)


def _date(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return _aware(moment)


def _first_date(values: Iterable[object]) -> datetime | None:
    return next((moment for value in values if (moment := _date(value))), None)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _items(value: object) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _nodes(value: object) -> list[Json]:
    return [item for item in _items(value) if isinstance(item, dict)]


def _node(value: object) -> Json:
    return next(iter(_nodes(value)), {})


def _str(value: object) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _unique(values: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(value for value in values if value))


# --- bytes, names -----------------------------------------------------------------------------------


def _json_object(text: str, what: str) -> Json:
    try:
        value = json.loads(text.removeprefix("\ufeff"))
    except (ValueError, RecursionError) as error:
        raise ImportRejected(f"{what} is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise ImportRejected(f"{what} is not a JSON object")
    return value


def _b64url(text: str) -> bytes:
    """Strict base64url without padding (RFC 7515): other alphabets and stray characters are errors."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _label(name: x509.Name) -> str:
    """'CN=..., O=...': what a person recognizes; the full distinguished name when it has neither."""
    parts = [
        f"{key}={value}"
        for key, oid in (("CN", NameOID.COMMON_NAME), ("O", NameOID.ORGANIZATION_NAME))
        if (value := _attribute(name, oid))
    ]
    return ", ".join(parts) or name.rfc4514_string()
