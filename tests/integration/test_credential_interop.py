"""Our credentials, checked by verifiers nobody on this project wrote.

- OB 3.0 Data Integrity (eddsa-rdfc-2022), VC-JWT and the bitstring status list: npm `@digitalbazaar/vc`
  and friends, `jose`, and Ajv against the official 1EdTech JSON Schema (tests/verifiers/ob3).
- OB 2.0 hosted assertions and baked PNG/SVG: the 1EdTech/IMS validator core, PyPI `openbadges`
  (tests/verifiers/ob2).
The awards come from the issuer's service layer on the sample Moodle events; the backpack web app
serves the DID document, status lists and hosted JSON on 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ebackpack.adapters.credential_exports import export
from ebackpack.adapters.credential_store import CredentialStore
from ebackpack.adapters.keystore import rotate_key_dir
from ebackpack.adapters.persistence.tables import AwardRow, Learner, OutboxRow
from ebackpack.config import Settings
from ebackpack.dev.sample_data import default_dataset
from schemas import CertificateRenderRequestMessage
from services.issuer.service import IssuerService
from services.renderer.certificate import CertificateRenderer
from tests.builders import completion, loopback_settings, sample_issued
from tests.conftest import WebServer, reserve_port
from tests.verifiers.ob2_validator import validate_ob2
from tests.verifiers.ob3_verifier import OFFICIAL_SCHEMA, verify_ob3

pytestmark = pytest.mark.integration


@dataclass
class Issued:
    service: IssuerService
    settings: Settings
    url: str
    render_requests: dict[str, CertificateRenderRequestMessage]

    def awards(self, rule_id: str | None = None) -> list[AwardRow]:
        with self.service.sessions() as session:
            query = session.query(AwardRow).order_by(AwardRow.credential_id)
            if rule_id:
                query = query.filter(AwardRow.rule_id == rule_id)
            return list(query.all())

    def export(self, award: AwardRow, fmt: str) -> bytes:
        with self.service.sessions() as session:
            store = CredentialStore.for_settings(session, self.service.rules, self.settings)
            return export(store, award, fmt).content

    def email(self, award: AwardRow) -> str:
        with self.service.sessions() as session:
            learner = session.get(Learner, award.learner_id)
            assert learner is not None
            return learner.email


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issued]:
    tmp = tmp_path_factory.mktemp("interop")
    sock = reserve_port()
    settings = loopback_settings(tmp, sock.getsockname()[1])
    requests: dict[str, CertificateRenderRequestMessage] = {}

    def keep_render_requests(rows: list[OutboxRow]) -> None:
        for row in rows:
            if row.topic.endswith("certificates.render"):
                requests[row.credential_id] = CertificateRenderRequestMessage.model_validate_json(row.payload)

    service = sample_issued(settings, keep_render_requests)
    with WebServer(settings, sock) as server:
        yield Issued(service, settings, server.url, requests)
    sock.close()


def assert_verified(result: dict[str, Any]) -> None:
    """The verifier's whole answer on failure: which check said no (signature, status, DID resolution)."""
    assert result["verified"], json.dumps(result, indent=1, default=str)[:4000]


def test_every_ob3_credential_verifies_and_matches_the_official_schema(issued: Issued) -> None:
    awards = issued.awards()
    assert len(awards) == len(default_dataset().expected_awards)
    for award in awards:
        credential = json.loads(issued.export(award, "ob3"))
        result = verify_ob3("di", credential, base_url=issued.url)
        assert result["verified"], (award.rule_id, result["errors"])
        assert result["statusChecked"] and result["revoked"] is False
        schema = verify_ob3("schema", credential, schema=OFFICIAL_SCHEMA)
        assert schema["valid"], schema["errors"]


def test_the_credential_carries_the_eu_micro_credential_elements(issued: Issued) -> None:
    award = issued.awards("python-basics")[0]
    credential = json.loads(issued.export(award, "ob3"))
    achievement = credential["credentialSubject"]["achievement"]
    assert credential["issuer"]["address"]["addressCountryCode"] == "PL"
    assert credential["issuer"]["name"] == "Stowarzyszenie Edukacji Dorosłych"
    assert credential["validFrom"].startswith("2026-01-12")
    assert achievement["name"] == "Python Basics" and achievement["creditsAvailable"] == 2
    assert achievement["volumeOfLearning"] == "PT50H"
    assert achievement["alignment"][0]["targetUrl"] == "http://data.europa.eu/snb/eqf/4"
    assert len(achievement["learningOutcome"]) == 2
    assert achievement["modeOfParticipation"] == "online"
    assert achievement["assessmentType"] and achievement["qualityAssurance"]
    identities = {i["identityType"]: i for i in credential["credentialSubject"]["identifier"]}
    assert identities["emailAddress"]["hashed"] is True
    assert identities["name"]["identityHash"]  # the learner, by name, as the Recommendation asks


def test_a_tampered_credential_is_rejected(issued: Issued) -> None:
    award = issued.awards("pierwsza-pomoc")[0]
    credential = json.loads(issued.export(award, "ob3"))
    credential["credentialSubject"]["achievement"]["name"] = "Chirurgia serca"
    result = verify_ob3("di", credential, base_url=issued.url)
    assert not result["verified"] and not result["proofVerified"]


def test_vc_jwt_verifies_with_the_ob3_claim_rules(issued: Issued) -> None:
    award = issued.awards("pierwsza-pomoc")[0]
    token = issued.export(award, "ob3-jwt").decode()
    result = verify_ob3("jwt", token, base_url=issued.url)
    assert result["verified"], result["errors"]
    claims, vc = result["claims"], result["claims"]["vc"]
    assert claims["iss"] == vc["issuer"]["id"] and claims["jti"] == vc["id"]
    assert claims["sub"] == vc["credentialSubject"]["id"]
    assert claims["exp"] > claims["nbf"]  # this rule is valid for 730 days
    assert result["header"]["alg"] == "ES256"


def test_revocation_reaches_the_status_list_the_hosted_json_and_the_verification_page(issued: Issued) -> None:
    award = issued.awards("python-basics")[-1]
    credential = json.loads(issued.export(award, "ob3"))
    token = issued.export(award, "ob3-jwt").decode()
    reason = "Exam fraud confirmed by the course board"
    issued.service.revoke(award.verification_code, reason)

    di = verify_ob3("di", credential, base_url=issued.url)
    assert di["revoked"] is True and not di["verified"] and di["proofVerified"]
    jwt = verify_ob3("jwt", token, base_url=issued.url)
    assert jwt["revoked"] is True and not jwt["verified"]
    hosted = httpx.get(f"{issued.url}/ob2/assertions/{award.verification_code}")
    assert hosted.status_code == 410 and hosted.json()["revoked"] is True
    listed = httpx.get(f"{issued.url}/ob2/revocations").json()["revokedAssertions"]
    assert {"id": hosted.json()["id"], "revocationReason": reason} in listed
    page = httpx.get(f"{issued.url}/verify/{award.verification_code}?format=json").json()
    assert page["status"] == "revoked" and page["revocation_reason"].startswith("Exam fraud")
    # the other credentials on the same status list stay valid
    other = json.loads(issued.export(issued.awards("python-basics")[0], "ob3"))
    assert_verified(verify_ob3("di", other, base_url=issued.url))


def test_an_expired_credential_is_expired_everywhere(issued: Issued) -> None:
    issued.service.handle(completion(learner=5723, course=43, when=datetime(2020, 3, 1, tzinfo=UTC)))
    award = next(a for a in issued.awards("pierwsza-pomoc") if a.learner_id == 5723)
    assert issued.service.expire_due() >= 1
    di = verify_ob3("di", json.loads(issued.export(award, "ob3")), base_url=issued.url)
    assert not di["verified"] and di["proofVerified"]
    assert any("expired" in e.lower() or "validuntil" in e.lower() for e in di["errors"]), di["errors"]
    page = httpx.get(f"{issued.url}/verify/{award.verification_code}?format=json").json()
    assert page["status"] == "expired"
    hosted = validate_ob2(f"{issued.url}/ob2/assertions/{award.verification_code}")
    assert not hosted["valid"] and any("expired" in e for e in hosted["errors"]), hosted["errors"]


def test_ob2_hosted_assertion_and_baked_badges_pass_the_1edtech_validator(
    issued: Issued, tmp_path: Path
) -> None:
    award = issued.awards("digital-accessibility")[0]
    email = issued.email(award)
    url = f"{issued.url}/ob2/assertions/{award.verification_code}"
    hosted = validate_ob2(url, recipient=email)
    assert hosted["valid"], hosted["errors"]
    for kind in ("png", "svg"):
        baked = tmp_path / f"badge.{kind}"
        baked.write_bytes(issued.export(award, f"ob2-{kind}"))
        result = validate_ob2(baked, recipient=email)
        assert result["valid"], (kind, result["errors"])
    wrong = validate_ob2(url, recipient="someone.else@example.org")
    assert not wrong["valid"]


def test_a_revoked_ob2_assertion_is_invalid_for_the_1edtech_validator(issued: Issued) -> None:
    award = issued.awards("digital-accessibility")[-1]
    issued.service.revoke(award.credential_id, "Issued to the wrong learner")
    url = f"{issued.url}/ob2/assertions/{award.verification_code}"
    result = validate_ob2(url, recipient=issued.email(award))
    assert not result["valid"]
    assert any(f["status"] == 410 for f in result["http"]["fetches"])


def test_after_key_rotation_old_and_new_credentials_both_verify(issued: Issued) -> None:
    old = issued.awards("python-basics")[0]
    rotate_key_dir(issued.settings.key_dir)
    rotated = IssuerService(issued.service.sessions, issued.service.rules, issued.settings)
    rotated.handle(completion(learner=5728, course=42, when=datetime(2026, 2, 1, tzinfo=UTC)))
    new = next(a for a in issued.awards("python-basics") if a.learner_id == 5728)
    old_doc, new_doc = (json.loads(issued.export(a, "ob3")) for a in (old, new))
    assert old_doc["proof"][0]["verificationMethod"].endswith("#ed25519-1")
    assert new_doc["proof"][0]["verificationMethod"].endswith("#ed25519-2")
    for document in (old_doc, new_doc):
        assert_verified(verify_ob3("di", document, base_url=issued.url))
    for award in (old, new):
        assert_verified(verify_ob3("jwt", issued.export(award, "ob3-jwt").decode(), base_url=issued.url))


def test_the_certificate_pdf_carries_the_signed_credential(issued: Issued, tmp_path: Path) -> None:
    if shutil.which("pdfdetach") is None:
        pytest.skip("pdfdetach (poppler-utils) is not installed")
    # a certificate no other test of this module revoked or let expire (which one they pick varies
    # with the generated code secret, which keys the credential ids)
    standing = {award.credential_id for award in issued.awards() if award.status == "issued"}
    credential_id, request = next((i, r) for i, r in issued.render_requests.items() if i in standing)
    pdf = tmp_path / "certificate.pdf"
    pdf.write_bytes(CertificateRenderer().render(request.data))
    listing = subprocess.run(["pdfdetach", "-list", str(pdf)], capture_output=True, text=True, check=True)
    assert "credential.json" in listing.stdout
    subprocess.run(["pdfdetach", "-save", "1", "-o", str(tmp_path / "attached.json"), str(pdf)], check=True)
    attached = json.loads((tmp_path / "attached.json").read_text(encoding="utf-8"))
    assert attached["id"] == f"urn:uuid:{credential_id}"
    assert_verified(verify_ob3("di", attached, base_url=issued.url))


def test_the_did_document_publishes_only_public_keys(issued: Issued) -> None:
    document = httpx.get(f"{issued.url}/.well-known/did.json").json()
    assert document["id"] == f"did:web:127.0.0.1%3A{issued.settings.http_port}"
    text = json.dumps(document)
    assert '"d"' not in text and "PRIVATE" not in text
    assert set(document["assertionMethod"]) == {m["id"] for m in document["verificationMethod"]}
