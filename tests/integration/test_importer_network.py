"""The importer on the network (opt-in): issuer keys, status lists and hosted assertions fetched from a
real HTTP server on 127.0.0.1, within the fetch policy (no private addresses unless allowed, time and
size limits), and re-verification that turns a badge revoked at its source into `revoked` here."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from ebackpack.adapters.persistence.engine import make_engine, migrate, session_factory
from ebackpack.adapters.persistence.tables import AttestationRow
from ebackpack.adapters.storage import ObjectStore
from ebackpack.config import SAMPLE_DIR, Settings
from ebackpack.domain.credentials import dataintegrity, statuslist
from ebackpack.domain.credentials.keys import SigningKey
from ebackpack.domain.rules import load_rules
from schemas import AttestationImportedMessage
from services.importer.domain import FetchError, ImportContext, Learner, VerificationStatus
from services.importer.fetch import PolicyFetcher
from services.importer.pipeline import import_bytes, import_url
from services.importer.service import ImporterService
from tests.http_stub import LoopbackServer, QuietHandler, respond

pytestmark = pytest.mark.integration
LEARNER = Learner(email="learner@example.org")


class Site:
    """A tiny issuer website: path -> (status, body); `slow` paths answer after a delay; `requests` lists
    every path asked for, in order."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, bytes]] = {}
        self.slow: set[str] = set()
        self.requests: list[str] = []
        site = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                site.requests.append(self.path)
                if self.path in site.slow:
                    time.sleep(2)
                status, body = site.pages.get(self.path, (404, b"not found"))
                respond(self, status, body)

        self.server = LoopbackServer(Handler)
        self.url = self.server.url

    def put(self, path: str, document: Any, status: int = 200) -> str:
        self.pages[path] = (status, json.dumps(document).encode())
        return self.url + path


def served_site() -> Iterator[Site]:
    """A Site that serves until the generator is closed (a fixture's teardown)."""
    site = Site()
    with site.server:
        yield site


@pytest.fixture
def site() -> Iterator[Site]:
    yield from served_site()


def ob2_assertion(assertion_id: str, badge: str, verification: dict[str, str]) -> dict[str, Any]:
    """An OB 2.0 assertion of a badge for LEARNER (e-mail in the clear), issued on 2026-02-01."""
    return {
        "@context": "https://w3id.org/openbadges/v2",
        "type": "Assertion",
        "id": assertion_id,
        "recipient": {"type": "email", "hashed": False, "identity": LEARNER.email},
        "badge": badge,
        "verification": verification,
        "issuedOn": "2026-02-01T00:00:00Z",
    }


def online(**trust: Any) -> ImportContext:
    fetcher = PolicyFetcher(timeout=1.0, max_bytes=256 * 1024, allow_private=True)
    return ImportContext(learner=LEARNER, fetcher=fetcher, **trust)


def issue(site: Site, *, revoked: bool = False) -> dict[str, Any]:
    """An OB 3.0 credential signed by the site's issuer, whose key document and status list it hosts."""
    key = SigningKey("ed25519-1", "Ed25519", ed25519.Ed25519PrivateKey.generate())
    issuer = f"{site.url}/issuers/1"
    method = f"{issuer}#key-1"
    site.put(
        "/issuers/1",
        {
            "id": issuer,
            "type": "Profile",
            "name": "Loopback Academy",
            "verificationMethod": [
                {
                    "id": method,
                    "type": "Multikey",
                    "controller": issuer,
                    "publicKeyMultibase": key.public_multibase(),
                }
            ],
        },
    )
    publish_status(site, revoked)
    credential = {
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
        ],
        "id": "urn:uuid:9b3a7d1e-0000-4000-8000-000000000001",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": {"id": issuer, "type": ["Profile"], "name": "Loopback Academy"},
        "validFrom": "2026-01-01T00:00:00Z",
        "name": "Loopback Badge",
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "achievement": {
                "id": f"{issuer}/achievements/1",
                "type": ["Achievement"],
                "name": "Loopback Badge",
                "description": "Served from 127.0.0.1.",
                "criteria": {"narrative": "Pass the test."},
            },
        },
        "credentialStatus": statuslist.entry(f"{site.url}/status/1", 7),
    }
    return dataintegrity.sign(credential, key, method, "2026-01-01T00:00:00Z")


def publish_status(site: Site, revoked: bool) -> None:
    site.put(
        "/status/1",
        {
            "id": f"{site.url}/status/1",
            "type": ["VerifiableCredential", "BitstringStatusListCredential"],
            "credentialSubject": {
                "type": "BitstringStatusList",
                "statusPurpose": "revocation",
                "encodedList": statuslist.encode([7] if revoked else []),
            },
        },
    )


def test_a_key_the_issuer_publishes_on_its_own_origin_makes_it_verified(site: Site) -> None:
    credential = issue(site)

    attestation = import_bytes(json.dumps(credential).encode(), online())

    assert attestation.verification.status is VerificationStatus.VERIFIED
    assert f"key document at {site.url}/issuers/1" in attestation.verification.reason
    assert "publishes on its own origin" in attestation.verification.reason
    assert f"status list {site.url}/status/1 checked" in attestation.verification.reason


def test_a_trusted_issuer_whose_key_it_publishes_itself_is_verified(site: Site) -> None:
    credential = issue(site)
    trusted = online(trusted_issuers=frozenset({credential["issuer"]["id"]}))

    assert (
        import_bytes(json.dumps(credential).encode(), trusted).verification.status
        is VerificationStatus.VERIFIED
    )


def test_a_credential_revoked_in_its_status_list_is_revoked(site: Site) -> None:
    credential = issue(site, revoked=True)

    attestation = import_bytes(json.dumps(credential).encode(), online())

    assert attestation.verification.status is VerificationStatus.REVOKED


def test_private_addresses_are_refused_unless_allowed(site: Site) -> None:
    url = site.put("/issuers/1", {"id": "x"})
    strict = PolicyFetcher(timeout=1.0, max_bytes=1024, allow_private=False)
    with pytest.raises(FetchError, match="non-public address 127.0.0.1"):
        strict.get(url)


def test_slow_and_oversized_answers_are_cut_off(site: Site) -> None:
    big = site.put("/big", {"padding": "x" * 300_000})
    slow = site.put("/slow", {"id": "slow"})
    site.slow.add("/slow")
    fetcher = PolicyFetcher(timeout=0.5, max_bytes=256 * 1024, allow_private=True)

    with pytest.raises(FetchError, match="larger than"):
        fetcher.get(big)
    started = time.monotonic()
    with pytest.raises(FetchError, match="Timeout"):
        fetcher.get(slow)
    assert time.monotonic() - started < 1.9


def test_a_hosted_ob2_assertion_is_compared_with_what_its_issuer_serves(site: Site) -> None:
    badge = site.put(
        "/badges/1",
        {
            "id": f"{site.url}/badges/1",
            "type": "BadgeClass",
            "name": "Hosted Badge",
            "issuer": f"{site.url}/issuer",
        },
    )
    site.put("/issuer", {"id": f"{site.url}/issuer", "type": "Issuer", "name": "Hosted Issuer"})
    assertion = ob2_assertion(f"{site.url}/a/1", badge, {"type": "hosted"})
    site.put("/a/1", assertion)

    genuine = import_bytes(json.dumps(assertion).encode(), online())
    altered = import_bytes(
        json.dumps(
            assertion | {"issuedOn": "2020-01-01T00:00:00Z", "badge": f"{site.url}/badges/2"}
        ).encode(),
        online(),
    )
    site.put("/a/1", {"revoked": True}, status=410)
    gone = import_bytes(json.dumps(assertion).encode(), online())

    assert genuine.verification.status is VerificationStatus.VERIFIED  # served on its issuer's origin
    assert (genuine.title, genuine.issuer.name) == ("Hosted Badge", "Hosted Issuer")
    assert altered.verification.status is VerificationStatus.INVALID
    assert gone.verification.status is VerificationStatus.REVOKED


def test_a_submitted_link_to_a_hosted_credential_is_fetched_and_checked(site: Site) -> None:
    url = site.put("/credentials/1", issue(site))

    attestation = import_url(url, online())

    assert attestation.verification.status is VerificationStatus.VERIFIED
    assert attestation.title == "Loopback Badge" and attestation.urls == [url]


def test_offline_the_same_link_says_it_was_not_checked(site: Site) -> None:
    url = site.put("/credentials/1", issue(site))

    attestation = import_url(url, ImportContext(learner=LEARNER))

    assert attestation.verification.status is VerificationStatus.NOT_VERIFIABLE
    assert "network fetches are off" in attestation.verification.reason


def test_re_verification_shows_a_revocation_at_the_source(site: Site, tmp_path: Any) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'e.db'}",
        import_network=True,
        import_allow_private=True,
        import_reverify_interval=3600,
    )
    migrate(settings.db_url)
    sessions = session_factory(make_engine(settings.db_url))
    importer = ImporterService(
        sessions, ObjectStore(settings), load_rules(SAMPLE_DIR / "rules.toml"), settings
    )
    url = site.put("/credentials/1", issue(site))
    with sessions.begin() as session:
        session.add(
            AttestationRow(
                id="a1",
                learner_id=1,
                state="received",
                submitted_url=url,
                size=0,
                received_at=datetime.now(UTC),
            )
        )
    first = AttestationImportedMessage.model_validate_json(importer.check("a1").value)
    publish_status(site, revoked=True)  # the issuer revokes it

    assert importer.reverify_due() == []  # checked less than an interval ago
    later = importer.reverify_due(now=datetime.now(UTC) + timedelta(hours=2))

    assert first.data.verification_status == "verified"
    assert len(later) == 1
    assert (
        AttestationImportedMessage.model_validate_json(later[0].value).data.verification_status == "revoked"
    )
    with sessions() as session:
        row = session.get(AttestationRow, "a1")
        assert row is not None and row.verification_status == "revoked"


def test_a_signed_ob2_assertion_is_checked_with_the_key_its_creator_url_serves(site: Site) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from joserfc import jws
    from joserfc.jwk import RSAKey

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    creator = site.put(
        "/keys/1", {"id": f"{site.url}/keys/1", "type": "CryptographicKey", "publicKeyPem": pem.decode()}
    )
    badge = site.put(
        "/badges/1",
        {
            "id": f"{site.url}/badges/1",
            "type": "BadgeClass",
            "name": "Signed Badge",
            "issuer": f"{site.url}/issuer",
        },
    )
    site.put(
        "/issuer",
        {"id": f"{site.url}/issuer", "type": "Issuer", "name": "Signing Issuer", "publicKey": creator},
    )
    assertion = {
        "@context": "https://w3id.org/openbadges/v2",
        "type": "Assertion",
        "id": "urn:uuid:42",
        "recipient": {"type": "email", "hashed": False, "identity": LEARNER.email},
        "badge": badge,
        "verification": {"type": "signed", "creator": creator},
        "issuedOn": "2026-02-01T00:00:00Z",
    }
    key = RSAKey.import_key(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    token = jws.serialize_compact({"alg": "RS256"}, json.dumps(assertion), key)
    header, _payload, signature = token.split(".")
    forged = jws.serialize_compact({"alg": "RS256"}, json.dumps(assertion | {"issuedOn": "2020-01-01"}), key)

    genuine = import_bytes(token.encode(), online())
    tampered = import_bytes(f"{header}.{forged.split('.')[1]}.{signature}".encode(), online())

    assert genuine.source_format.value == "ob2-jws"
    assert genuine.verification.status is VerificationStatus.VERIFIED, genuine.verification  # key listed
    assert genuine.title == "Signed Badge"
    assert tampered.verification.status is VerificationStatus.INVALID, tampered.verification


def test_uploads_whose_event_never_arrived_are_found_by_the_sweep(tmp_path: Any) -> None:
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'e.db'}")
    migrate(settings.db_url)
    sessions = session_factory(make_engine(settings.db_url))
    importer = ImporterService(
        sessions, ObjectStore(settings), load_rules(SAMPLE_DIR / "rules.toml"), settings
    )
    now = datetime.now(UTC)
    with sessions.begin() as session:
        for name, age in (("old", 120), ("new", 5)):
            session.add(
                AttestationRow(
                    id=name,
                    learner_id=1,
                    state="received",
                    submitted_url="https://a.example/x",
                    size=0,
                    received_at=now - timedelta(seconds=age),
                )
            )

    assert importer.stuck_uploads(older_than_seconds=60) == ["old"]
    importer.check("old")  # offline: imported as not verifiable, no longer stuck
    assert importer.stuck_uploads(older_than_seconds=0) == ["new"]
