"""Europass Digital Credentials: the seven real sealed samples, and EDCs we seal ourselves.

The samples (tests only read ../shared beside the project) cover the issuer's real output; the
self-sealed credentials cover what the samples cannot without their private key: expiry, other
algorithms, certificate chains.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from services.importer.domain import (
    ImportContext,
    ImportRejected,
    Learner,
    RecipientMatch,
    SourceFormat,
    VerificationStatus,
)
from services.importer.formats.europass import looks_like_europass, parse_europass

SAMPLES = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "external" / "europass-edc"
SAMPLE_FILES = sorted(SAMPLES.glob("*.jsonld"))
NOW = datetime(2026, 2, 1, tzinfo=UTC)
SEALED_AT = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
VELOCERT_ORG_ID = "NTREE-17207834"  # organizationIdentifier of the samples' seal certificate
SAMPLE_EMAIL = "peter.paravinja@netis.si"
LEARNER = Learner(email="learner@example.org", name="Lea Learner")
UNENCODED = b"eyJiNjQiOmZhbHNlfQ"  # base64url of {"b64":false}: the payload is the credential as is


def context(learner: Learner = LEARNER, trusted: frozenset[str] = frozenset()) -> ImportContext:
    return ImportContext(learner=learner, now=NOW, trusted_issuers=trusted)


def sample(name: str) -> bytes:
    return (SAMPLES / f"edc-{name}-signed.jsonld").read_bytes()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_the_samples_are_where_the_tests_expect_them() -> None:
    # beside the project's root, wherever the checkout lives
    assert SAMPLES.is_dir(), SAMPLES
    assert len(SAMPLE_FILES) == 7


# --- the real samples -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda path: path.stem)
def test_every_sample_imports_with_a_valid_seal_of_an_unknown_issuer(path: Path) -> None:
    data = path.read_bytes()
    assert looks_like_europass(json.loads(data))

    attestation = parse_europass(data, context())

    assert attestation.source_format is SourceFormat.EUROPASS_EDC
    assert attestation.verification.status == "signature valid but issuer not known"
    assert attestation.verification.method.startswith("JAdES seal (RS256, x5c certificate 'CN=VELOCERT OU")
    reason = attestation.verification.reason
    assert "trust list" in reason and "revocation" in reason and "2026-01-12" in reason
    assert attestation.title.strip() and attestation.issuer.name == "Velocert OÜ"
    assert attestation.issuer.url == "https://velocert.com"
    assert attestation.issued_on is not None and attestation.issued_on.year == 2026
    assert attestation.original_json == data.decode()


def test_the_microcredential_sample_is_read_in_full() -> None:
    attestation = parse_europass(sample("mc"), context())

    assert attestation.title == "Microcredential: Title of your learning achievement"
    assert attestation.description is not None and "Developmental Psychology" in attestation.description
    assert attestation.learning_outcomes == [
        "Example of learning outcome",
        "Example of learning second outcome",
    ]
    assert attestation.workload == "5 ECTS, 45 hours"
    assert attestation.issued_on == datetime(2026, 1, 12, 7, 12, 23, tzinfo=UTC)
    assert attestation.expires_on is None


def test_sample_dates_and_workloads() -> None:
    enrolment = parse_europass(sample("coe"), context())
    attendance = parse_europass(sample("cas"), context())

    assert enrolment.expires_on == datetime(2030, 12, 31, tzinfo=UTC)
    assert attendance.workload == "60 hours"  # the activity's workload PT60H


def test_the_recipient_is_compared_by_e_mail() -> None:
    mine = parse_europass(sample("dc"), context(Learner(email="Peter.Paravinja@NETIS.si")))
    someone_elses = parse_europass(sample("dc"), context())

    assert mine.recipient is RecipientMatch.MATCH and SAMPLE_EMAIL in mine.recipient_detail
    assert someone_elses.recipient is RecipientMatch.MISMATCH
    assert SAMPLE_EMAIL in someone_elses.recipient_detail and LEARNER.email in someone_elses.recipient_detail


def test_trusting_the_seal_certificate_makes_the_sample_verified() -> None:
    fingerprint = (
        "sha256:"
        + x509.load_der_x509_certificate(base64.b64decode(protected_header(sample("mc"))["x5c"][0]))
        .fingerprint(hashes.SHA256())
        .hex()
    )
    attestation = parse_europass(sample("mc"), context(trusted=frozenset({fingerprint})))

    assert attestation.verification.status is VerificationStatus.VERIFIED
    assert fingerprint in attestation.verification.reason and "trust list" in attestation.verification.reason


@pytest.mark.parametrize("trusted", [VELOCERT_ORG_ID, "urn:epass:org:d6509a99-5f09-42a7-ac09-e5ce5a8ec5e0"])
def test_trusted_names_alone_do_not_verify_a_seal(trusted: str) -> None:
    """Anyone can make a self-signed certificate with a trusted organisation's name or identifier."""
    attestation = parse_europass(sample("mc"), context(trusted=frozenset({trusted})))

    assert attestation.verification.status is VerificationStatus.ISSUER_UNKNOWN
    assert "sha256:" in attestation.verification.reason


def test_a_changed_title_breaks_the_seal() -> None:
    document = json.loads(sample("cas"))
    title = '"en":"Certificate of Attendance"'  # the credential's title, once in the payload
    assert document["payload"].count(title) == 1
    document["payload"] = document["payload"].replace(title, title.replace("Attendance", "Attendancf"))

    attestation = parse_europass(json.dumps(document).encode(), context(trusted=frozenset({VELOCERT_ORG_ID})))

    assert attestation.verification.status is VerificationStatus.INVALID
    assert "changed after sealing" in attestation.verification.reason


def test_a_flipped_signature_byte_breaks_the_seal() -> None:
    document = json.loads(sample("coe"))
    signature = bytearray(base64.urlsafe_b64decode(document["signatures"][0]["signature"] + "=="))
    signature[17] ^= 0x01
    document["signatures"][0]["signature"] = b64url(bytes(signature))

    attestation = parse_europass(json.dumps(document).encode(), context())

    assert attestation.verification.status is VerificationStatus.INVALID
    assert "corrupt" in attestation.verification.reason


def test_a_truncated_sample_is_rejected() -> None:
    data = sample("dc")
    with pytest.raises(ImportRejected, match="not JSON"):
        parse_europass(data[: len(data) // 2], context())


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"\xff\xfe not text", "not UTF-8"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"signatures": [{"protected": "eyJhbGciOiJSUzI1NiJ9", "signature": "AA"}]}', "no payload"),
        (
            b'{"payload": "{}", "signatures": [{"protected": "not base64url!", "signature": "AA"}]}',
            "protected header is not base64url",
        ),
        (b'{"payload": "{}", "signatures": []}', "non-empty list"),
        (
            b'{"payload": "{\\"@context\\": [", "signatures": [{"protected": "%s", "signature": "AA"}]}'
            % UNENCODED,
            "payload is not JSON",
        ),
        (
            b'{"payload": "not json", "signatures": [{"protected": "%s", "signature": "AA"}]}' % UNENCODED,
            "payload is not JSON",
        ),
        (
            b'{"@context": ["https://www.w3.org/2018/credentials/v1"], "type": ["VerifiableCredential"]}',
            "not a Europass Digital Credential",
        ),
    ],
)
def test_malformed_files_are_rejected_precisely(document: bytes, message: str) -> None:
    with pytest.raises(ImportRejected, match=message):
        parse_europass(document, context())


def test_looks_like_europass_tells_edc_from_other_json() -> None:
    assert looks_like_europass(edc())
    assert not looks_like_europass(
        {
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "type": ["VerifiableCredential", "OpenBadgeCredential"],
        }
    )
    assert not looks_like_europass({"payload": "eyJmb28iOiJiYXIifQ", "signatures": []})
    assert looks_like_europass(json.loads(seal(edc(), *seal_key(), b64=True)))


# --- EDCs sealed here -------------------------------------------------------------------------------


def edc(**changes: Any) -> dict[str, Any]:
    """An EDC 3 shaped credential, as the EU's issuer writes them (language maps, hasClaim)."""
    credential: dict[str, Any] = {
        "@context": [
            "https://www.w3.org/2018/credentials/v1",
            "http://data.europa.eu/snb/model/context/edc-ap",
        ],
        "type": ["VerifiableCredential", "EuropeanDigitalCredential"],
        "id": "urn:credential:0b1f6a3c",
        "issuer": {
            "id": "urn:epass:org:test-school",
            "type": "Organisation",
            "legalName": {"de": "Testschule", "fr": "École de test"},
            "homepage": [{"type": "WebResource", "contentURL": "https://school.example"}],
        },
        "issuanceDate": "2025-06-01T10:00:00Z",
        "credentialSubject": {
            "id": "did:example:lea",
            "type": "Person",
            "fullName": {"en": "Lea Learner"},
            "contactPoint": [
                {
                    "type": "ContactPoint",
                    "emailAddress": [{"id": "mailto:Learner@Example.org", "type": "Mailbox"}],
                }
            ],
            "hasClaim": [
                {
                    "id": "urn:epass:learningAchievement:1",
                    "type": "LearningAchievement",
                    "title": {"de": "Datenbanken"},
                    "description": {"fr": "Cours de bases de données", "en": "A databases course"},
                    "specifiedBy": {
                        "type": "Qualification",
                        "creditPoint": {
                            "type": "CreditPoint",
                            "point": 3,
                            "framework": {"type": "Concept", "prefLabel": {"en": "ECTS"}},
                        },
                    },
                }
            ],
        },
        "evidence": [
            {
                "type": "Evidence",
                "supportingDocument": {"type": "WebResource", "contentURL": "https://school.example/check"},
            }
        ],
        "displayParameter": {"type": "DisplayParameter", "title": {"en": "Microcredential"}},
    }
    credential.update(changes)
    return credential


def certificate(
    name: str,
    key: CertificateIssuerPrivateKeyTypes,
    *,
    issuer: x509.Certificate | None = None,
    issuer_key: CertificateIssuerPrivateKeyTypes | None = None,
    valid: tuple[datetime, datetime] = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC)),
) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"ID-{name}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test School"),
        ]
    )
    digest = (
        None
        if isinstance(key if issuer_key is None else issuer_key, ed25519.Ed25519PrivateKey)
        else hashes.SHA256()
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .sign(key if issuer_key is None else issuer_key, digest)
    )


def protected_header(data: bytes) -> dict[str, Any]:
    document = json.loads(data)
    signature = document["signatures"][0] if "signatures" in document else document
    encoded = signature["protected"]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    return decoded


def seal_key() -> tuple[ec.EllipticCurvePrivateKey, list[x509.Certificate]]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, [certificate("Test Seal", key)]


def sign(alg: str, key: Any, data: bytes) -> bytes:
    if alg == "ES256":
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == "RS256":
        return bytes(key.sign(data, padding.PKCS1v15(), hashes.SHA256()))
    if alg == "PS256":
        return bytes(key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()))
    return bytes(key.sign(data))  # EdDSA


def seal(
    credential: dict[str, Any],
    key: Any,
    chain: list[x509.Certificate],
    *,
    alg: str = "ES256",
    signed_at: datetime = SEALED_AT,
    b64: bool = False,
) -> bytes:
    """A JAdES-like seal in JWS JSON serialization, as the EU's issuer makes them."""
    x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode() for cert in chain]
    header = {
        "alg": alg,
        "typ": "jose+json",
        "b64": b64,
        "crit": ["b64", "sigT"],
        "sigT": f"{signed_at:%Y-%m-%dT%H:%M:%SZ}",
        "x5c": x5c,
    }
    protected = b64url(json.dumps(header).encode())
    text = json.dumps(credential, ensure_ascii=False)
    payload = text if not b64 else b64url(text.encode())
    signature = sign(alg, key, f"{protected}.{payload}".encode())
    return json.dumps(
        {"payload": payload, "signatures": [{"protected": protected, "signature": b64url(signature)}]}
    ).encode()


def test_a_self_sealed_edc_is_read_in_the_languages_it_has() -> None:
    attestation = parse_europass(seal(edc(), *seal_key()), context())

    assert attestation.verification.status is VerificationStatus.ISSUER_UNKNOWN
    method = "JAdES seal (ES256, x5c certificate 'CN=Test Seal, O=Test School')"
    assert attestation.verification.method == method
    assert attestation.title == "Microcredential: Datenbanken"  # English where given, else the first language
    assert attestation.issuer.name == "Testschule" and attestation.issuer.url == "https://school.example"
    assert attestation.issuer.identifier == "urn:epass:org:test-school"
    assert attestation.description == "A databases course"
    assert attestation.workload == "3 ECTS"
    assert attestation.urls == ["https://school.example/check"]
    assert attestation.recipient is RecipientMatch.MATCH  # e-mail in another case, behind mailto:


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
def test_each_supported_algorithm_verifies(alg: str) -> None:
    key: Any = {
        "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate,
    }.get(alg, lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))()
    data = seal(edc(), key, [certificate("Test Seal", key)], alg=alg)

    assert parse_europass(data, context()).verification.status is VerificationStatus.ISSUER_UNKNOWN


def test_a_base64url_payload_verifies_too() -> None:
    assert (
        parse_europass(seal(edc(), *seal_key(), b64=True), context()).verification.status
        is VerificationStatus.ISSUER_UNKNOWN
    )


def test_an_expired_credential_with_a_valid_seal_is_expired() -> None:
    attestation = parse_europass(seal(edc(validUntil="2026-01-31T00:00:00Z"), *seal_key()), context())

    assert attestation.verification.status is VerificationStatus.EXPIRED
    assert attestation.expires_on == datetime(2026, 1, 31, tzinfo=UTC)
    assert "2026-01-31" in attestation.verification.reason


def test_an_expired_credential_with_a_broken_seal_is_invalid() -> None:
    document = json.loads(seal(edc(expirationDate="2020-01-01"), *seal_key()))
    document["payload"] = document["payload"].replace("Datenbanken", "Datenbankem")

    attestation = parse_europass(json.dumps(document).encode(), context())

    assert attestation.verification.status is VerificationStatus.INVALID
    assert "changed after sealing" in attestation.verification.reason


def test_a_credential_valid_until_later_is_not_expired() -> None:
    data = seal(edc(validUntil="2030-12-31"), *seal_key())

    assert parse_europass(data, context()).verification.status is VerificationStatus.ISSUER_UNKNOWN


def test_a_credential_for_someone_else_is_a_mismatch() -> None:
    subject = {"type": "Person", "contactPoint": {"emailAddress": {"id": "mailto:other@example.org"}}}
    attestation = parse_europass(seal(edc(credentialSubject=subject), *seal_key()), context())

    assert attestation.recipient is RecipientMatch.MISMATCH
    assert "other@example.org" in attestation.recipient_detail


def test_a_recipient_without_e_mail_matches_by_identifier_or_stays_unknown() -> None:
    subject = {"id": "did:example:lea", "type": "Person", "fullName": {"en": "Lea Learner"}}
    data = seal(edc(credentialSubject=subject), *seal_key())
    known = context(Learner(email="learner@example.org", identifiers=frozenset({"did:example:lea"})))

    assert parse_europass(data, known).recipient is RecipientMatch.MATCH
    unknown = parse_europass(data, context())
    assert unknown.recipient is RecipientMatch.UNKNOWN and "Lea Learner" in unknown.recipient_detail


def test_a_seal_with_the_same_names_but_another_certificate_is_not_trusted() -> None:
    trusted_seal, forged_seal = seal(edc(), *seal_key()), seal(edc(), *seal_key())
    fingerprint = (
        "sha256:"
        + x509.load_der_x509_certificate(base64.b64decode(protected_header(trusted_seal)["x5c"][0]))
        .fingerprint(hashes.SHA256())
        .hex()
    )
    trusting = context(trusted=frozenset({fingerprint}))

    assert parse_europass(trusted_seal, trusting).verification.status is VerificationStatus.VERIFIED
    assert parse_europass(forged_seal, trusting).verification.status is VerificationStatus.ISSUER_UNKNOWN


def test_a_certificate_chain_is_checked_link_by_link() -> None:
    ca_key, seal_private = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("Test CA", ca_key)
    leaf = certificate("Test Seal", seal_private, issuer=ca, issuer_key=ca_key)
    stranger = certificate("Test CA", ec.generate_private_key(ec.SECP384R1()))

    good = parse_europass(seal(edc(), seal_private, [leaf, ca]), context())
    broken = parse_europass(seal(edc(), seal_private, [leaf, stranger]), context())

    assert good.verification.status is VerificationStatus.ISSUER_UNKNOWN
    assert "signed by the next" in good.verification.reason
    assert broken.verification.status is VerificationStatus.INVALID
    assert "chain is broken" in broken.verification.reason


def test_a_seal_made_outside_the_certificate_validity_is_invalid() -> None:
    key, chain = seal_key()
    data = seal(edc(), key, chain, signed_at=datetime(2024, 6, 1, tzinfo=UTC))

    attestation = parse_europass(data, context())

    assert attestation.verification.status is VerificationStatus.INVALID
    assert "not at the signing time" in attestation.verification.reason


def test_a_seal_by_another_key_is_invalid() -> None:
    _, chain = seal_key()
    data = seal(edc(), ec.generate_private_key(ec.SECP256R1()), chain)

    assert parse_europass(data, context()).verification.status is VerificationStatus.INVALID


def test_a_key_of_the_wrong_kind_for_the_algorithm_is_invalid() -> None:
    key, chain = seal_key()
    document = json.loads(seal(edc(), key, chain))
    protected = json.loads(base64.urlsafe_b64decode(document["signatures"][0]["protected"] + "=="))
    document["signatures"][0]["protected"] = b64url(json.dumps({**protected, "alg": "RS256"}).encode())

    attestation = parse_europass(json.dumps(document).encode(), context())

    assert attestation.verification.status is VerificationStatus.INVALID
    assert "RS256" in attestation.verification.reason


def test_an_unknown_critical_header_is_not_verifiable() -> None:
    key, chain = seal_key()
    document = json.loads(seal(edc(), key, chain))
    protected = json.loads(base64.urlsafe_b64decode(document["signatures"][0]["protected"] + "=="))
    header = {**protected, "crit": ["b64", "sigT", "sigD"], "sigD": {}}
    document["signatures"][0]["protected"] = b64url(json.dumps(header).encode())

    attestation = parse_europass(json.dumps(document).encode(), context())

    assert attestation.verification.status is VerificationStatus.NOT_VERIFIABLE
    assert "sigD" in attestation.verification.reason


def test_an_unsigned_edc_is_not_verifiable() -> None:
    data = json.dumps(edc()).encode()

    attestation = parse_europass(data, context())

    assert attestation.verification.status is VerificationStatus.NOT_VERIFIABLE
    assert "no seal" in attestation.verification.reason.lower()
    assert attestation.title == "Microcredential: Datenbanken"


def test_odd_structures_degrade_to_empty_fields() -> None:
    odd = edc(
        issuer="urn:epass:org:bare",
        credentialSubject=[],
        displayParameter={"title": 5},
        issuanceDate="yesterday",
        evidence="none",
        validUntil=17,
    )

    attestation = parse_europass(seal(odd, *seal_key()), context())

    assert attestation.title == "Europass Digital Credential"
    assert attestation.issuer.identifier == "urn:epass:org:bare" and attestation.issuer.name is None
    assert attestation.issued_on is None and attestation.expires_on is None
    assert attestation.recipient is RecipientMatch.UNKNOWN and attestation.urls == []
    assert attestation.verification.status is VerificationStatus.ISSUER_UNKNOWN


def test_a_sealed_credential_valid_only_from_a_future_date_is_invalid_and_says_from_when() -> None:
    attestation = parse_europass(seal(edc(validFrom="2099-01-01T00:00:00Z"), *seal_key()), context())
    unsealed = parse_europass(json.dumps(edc(issuanceDate="2099-02-01T00:00:00Z")).encode(), context())

    assert attestation.verification.status is VerificationStatus.INVALID
    assert "valid only from 2099-01-01 00:00 UTC (validFrom)" in attestation.verification.reason
    assert "ważne dopiero od 2099-01-01" in (attestation.verification.reason_pl or "")
    assert "signature matches" in attestation.verification.reason  # the seal itself was checked
    assert unsealed.verification.status is VerificationStatus.INVALID  # whatever the seal's standing
