"""Our own outputs, uploaded back as external attestations, import as `verified` (and as revoked,
tampered or someone else's when they are).

The awards come from the issuer's service layer on the sample Moodle events (SQLite); the importer's
context is the one its worker builds: our database, our keys, our public URL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ebackpack.adapters.credential_exports import FORMATS, export
from ebackpack.adapters.credential_store import CredentialStore
from ebackpack.adapters.persistence.engine import make_engine, migrate, session_factory
from ebackpack.adapters.persistence.tables import AwardRow
from ebackpack.adapters.storage import ObjectStore
from ebackpack.config import SAMPLE_DIR, Settings
from ebackpack.dev.sample_data import default_dataset
from ebackpack.domain.rules import load_rules
from ebackpack.streaming.errors import InvalidMessage
from schemas import CertificateRenderRequestMessage
from services.gateway.profiles import store_profiles
from services.importer.domain import Attestation, RecipientMatch, SourceFormat, VerificationStatus
from services.importer.pipeline import import_bytes, import_url
from services.importer.service import ImporterService
from services.issuer.service import IssuerService
from services.renderer.certificate import CertificateRenderer

pytestmark = pytest.mark.integration
EXPECTED_SOURCE = {
    "ob2": SourceFormat.OB2_JSON,
    "ob2-png": SourceFormat.OB2_PNG,
    "ob2-svg": SourceFormat.OB2_SVG,
    "ob3": SourceFormat.OB3_JSON,
    "ob3-jwt": SourceFormat.OB3_JWT,
    "ob3-png": SourceFormat.OB3_PNG,
}


@dataclass
class Issued:
    issuer: IssuerService
    importer: ImporterService
    settings: Settings
    requests: dict[str, CertificateRenderRequestMessage]

    def award(self, rule_id: str, index: int = 0) -> AwardRow:
        with self.issuer.sessions() as session:
            awards = (
                session.query(AwardRow).filter(AwardRow.rule_id == rule_id).order_by(AwardRow.credential_id)
            )
            return list(awards)[index]

    def export(self, award: AwardRow, fmt: str) -> bytes:
        with self.issuer.sessions() as session:
            return export(
                CredentialStore.for_settings(session, self.issuer.rules, self.settings), award, fmt
            ).content

    def pdf(self, award: AwardRow) -> bytes:
        return CertificateRenderer().render(self.requests[award.credential_id].data)

    def upload(self, data: bytes, learner_id: int) -> Attestation:
        """What the importer worker does with an upload, minus S3 and Kafka."""
        with self.importer.sessions() as session:
            return import_bytes(data, self.importer.context_for(session, learner_id))


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issued]:
    tmp = tmp_path_factory.mktemp("own-imports")
    settings = Settings(
        data_dir=tmp,
        database_url=f"sqlite:///{tmp / 'ebackpack.db'}",
        public_url="https://backpack.example.org",
    )
    migrate(settings.db_url)
    sessions = session_factory(make_engine(settings.db_url))
    store_profiles(sessions, default_dataset().profiles)
    rules = load_rules(SAMPLE_DIR / "rules.toml")
    issuer = IssuerService(sessions, rules, settings)
    requests: dict[str, CertificateRenderRequestMessage] = {}
    for _key, value in default_dataset().messages:
        try:
            rows = issuer.handle(value)
        except InvalidMessage:
            continue
        for row in rows:
            if row.topic.endswith("certificates.render"):
                requests[row.credential_id] = CertificateRenderRequestMessage.model_validate_json(row.payload)
    yield Issued(
        issuer, ImporterService(sessions, ObjectStore(settings), rules, settings), settings, requests
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_of_our_badge_formats_imports_as_verified(issued: Issued, fmt: str) -> None:
    award = issued.award("python-basics")

    attestation = issued.upload(issued.export(award, fmt), award.learner_id)

    assert attestation.verification.status is VerificationStatus.VERIFIED, attestation.verification
    assert attestation.source_format is EXPECTED_SOURCE[fmt]
    assert attestation.title == "Python Basics"
    assert attestation.issuer.name == "Stowarzyszenie Edukacji Dorosłych"
    assert attestation.recipient is RecipientMatch.MATCH
    assert attestation.issued_on is not None and attestation.issued_on.date().isoformat() == "2026-01-12"


def test_our_pdf_certificate_imports_as_verified_by_its_attached_credential(issued: Issued) -> None:
    award = issued.award("pierwsza-pomoc")

    attestation = issued.upload(issued.pdf(award), award.learner_id)

    assert attestation.source_format is SourceFormat.PDF
    assert attestation.verification.status is VerificationStatus.VERIFIED, attestation.verification
    assert attestation.verification.method.startswith("credential attached to the PDF")
    # The attached credential decides, so the pages are not rendered and the QR code is not read.
    assert issued.settings.verify_url(award.verification_code) not in attestation.urls


def test_our_verification_link_imports_as_verified(issued: Issued) -> None:
    award = issued.award("pierwsza-pomoc")
    with issued.importer.sessions() as session:
        attestation = import_url(
            issued.settings.verify_url(award.verification_code),
            issued.importer.context_for(session, award.learner_id),
        )
    assert attestation.verification.status is VerificationStatus.VERIFIED
    assert attestation.title == award.achievement_name


def test_another_learners_badge_is_flagged_as_not_theirs(issued: Issued) -> None:
    award, someone_else = issued.award("python-basics", 0), issued.award("python-basics", 1)
    assert award.learner_id != someone_else.learner_id

    attestation = issued.upload(issued.export(award, "ob3"), someone_else.learner_id)

    assert attestation.verification.status is VerificationStatus.VERIFIED  # the badge itself is genuine
    assert attestation.recipient is RecipientMatch.MISMATCH


def test_a_tampered_credential_of_ours_is_invalid(issued: Issued) -> None:
    award = issued.award("python-basics")
    credential = json.loads(issued.export(award, "ob3"))
    credential["credentialSubject"]["achievement"]["name"] = "Python Expert"

    attestation = issued.upload(json.dumps(credential).encode(), award.learner_id)

    assert attestation.verification.status is VerificationStatus.INVALID
    assert "changed after signing" in attestation.verification.reason


def test_a_forged_code_on_a_link_of_ours_is_invalid(issued: Issued) -> None:
    with issued.importer.sessions() as session:
        attestation = import_url(
            issued.settings.verify_url("ZZZZ-ZZZZ-ZZZZ"), issued.importer.context_for(session, 1)
        )
    assert attestation.verification.status is VerificationStatus.INVALID


def test_revoked_credentials_of_ours_import_as_revoked_in_every_format(issued: Issued) -> None:
    award = issued.award("pierwsza-pomoc", 1)
    uploads = {fmt: issued.export(award, fmt) for fmt in FORMATS} | {"pdf": issued.pdf(award)}
    issued.issuer.revoke(award.verification_code, "issued in error")

    for fmt, data in uploads.items():
        attestation = issued.upload(data, award.learner_id)
        assert attestation.verification.status is VerificationStatus.REVOKED, (fmt, attestation.verification)
        assert "issued in error" in attestation.verification.reason
