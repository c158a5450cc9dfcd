"""The VC-API on the web server: `/credentials/issue` signs a client's credential only with the issue
token, `/credentials/verify` checks anyone's (data model, proof, validity, our status lists). What we
sign is checked again by `@digitalbazaar/vc` (tests/verifiers/ob3), not only by our own verify."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ebackpack.adapters.credential_exports import export
from ebackpack.adapters.persistence.engine import migrate
from ebackpack.adapters.persistence.tables import AwardRow
from ebackpack.bootstrap import Platform
from ebackpack.config import Settings
from services.issuer.service import IssuerService
from tests.builders import loopback_settings, sample_issued
from tests.conftest import WebServer, reserve_port
from tests.verifiers.ob3_verifier import verify_ob3

pytestmark = pytest.mark.integration
TOKEN = "vcapi-test-token-" + "x7Qm2pL9vR4tN8wK3sJ6hF1dZ5cB0aY"


@dataclass
class Server:
    url: str
    service: IssuerService
    platform: Platform
    did_key: str

    def post(self, path: str, body: object, token: str | None = TOKEN) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(f"{self.url}{path}", json=body, headers=headers, timeout=30)

    def ob3(self, award: AwardRow) -> dict[str, Any]:
        with self.platform.sessions() as session:
            document: dict[str, Any] = json.loads(
                export(self.platform.credential_store(session), award, "ob3").content
            )
        return document


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("vcapi")
    sock = reserve_port()
    settings = loopback_settings(tmp, sock.getsockname()[1], vcapi_issue_token=TOKEN)
    service = sample_issued(settings)
    platform = Platform(settings)
    with WebServer(settings, sock) as web:
        document = httpx.get(f"{web.url}/.well-known/did.json", timeout=10).json()
        multikey = next(
            m["publicKeyMultibase"] for m in document["verificationMethod"] if "publicKeyMultibase" in m
        )
        yield Server(web.url, service, platform, f"did:key:{multikey}")
    sock.close()


SUBJECT = "did:example:ebfeb1f712ebc6f1c276e12ec21"
EXAMPLES = "https://www.w3.org/ns/credentials/examples/v2"


TERMS = {
    "ExampleAlumniCredential": "https://example.org/vocab#ExampleAlumniCredential",
    "alumniOf": "https://schema.org/alumniOf",
}


def credential(issuer: str, **extra: Any) -> dict[str, Any]:
    """Its terms defined inline (the examples context is ours to bundle, not the independent
    verifier's)."""
    return {
        "@context": ["https://www.w3.org/ns/credentials/v2", TERMS],
        "type": ["VerifiableCredential", "ExampleAlumniCredential"],
        "issuer": issuer,
        "validFrom": "2026-01-01T00:00:00Z",
        "credentialSubject": {"id": SUBJECT, "alumniOf": "Example University"},
        **extra,
    }


def test_a_signed_credential_verifies_here_and_with_an_independent_verifier(server: Server) -> None:
    issued = server.post("/credentials/issue", {"credential": credential(server.did_key), "options": {}})
    assert issued.status_code == 201, issued.text
    signed = issued.json()["verifiableCredential"]
    (proof,) = signed["proof"]
    assert proof["cryptosuite"] == "eddsa-rdfc-2022" and proof["verificationMethod"].startswith(
        server.did_key
    )
    independent = verify_ob3("di", signed)
    assert independent["verified"], independent["errors"]
    answer = server.post("/credentials/verify", {"verifiableCredential": signed}, token=None)
    assert answer.status_code == 200 and answer.json()["verified"] is True
    assert answer.json()["checks"] == ["proof"]


def test_the_examples_context_of_the_w3c_suites_is_understood(server: Server) -> None:
    example = credential(server.did_key, **{"@context": ["https://www.w3.org/ns/credentials/v2", EXAMPLES]})
    example["type"] = ["VerifiableCredential", "ExampleAlumniCredential"]
    signed = server.post("/credentials/issue", {"credential": example})
    assert signed.status_code == 201, signed.text
    answer = server.post(
        "/credentials/verify", {"verifiableCredential": signed.json()["verifiableCredential"]}
    )
    assert answer.status_code == 200, answer.text


def test_a_claim_outside_the_proof_is_refused(server: Server) -> None:
    """A property no context defines would not be signed: showing one is not verified."""
    signed = server.post("/credentials/issue", {"credential": credential(server.did_key)}).json()
    added = copy.deepcopy(signed["verifiableCredential"])
    added["credentialSubject"]["degree"] = "Doctor of Everything"
    answer = server.post("/credentials/verify", {"verifiableCredential": added}, token=None)
    assert answer.status_code == 400
    assert answer.json()["errors"] == [
        "property 'degree' is not defined by any @context: a proof would not cover it"
    ]


def test_a_changed_claim_fails_verification(server: Server) -> None:
    signed = server.post("/credentials/issue", {"credential": credential(server.did_key)}).json()
    tampered = copy.deepcopy(signed["verifiableCredential"])
    tampered["credentialSubject"]["alumniOf"] = "Another University"
    answer = server.post("/credentials/verify", {"verifiableCredential": tampered}, token=None)
    assert answer.status_code == 400
    assert answer.json()["verified"] is False
    assert answer.json()["errors"] == ["proof: signature does not match the document"]


def test_our_issued_credential_verifies_with_its_status_until_revoked(server: Server) -> None:
    with server.platform.sessions() as session:
        award = session.query(AwardRow).order_by(AwardRow.credential_id).first()
    assert award is not None
    answer = server.post("/credentials/verify", {"verifiableCredential": server.ob3(award)}, token=None)
    assert answer.status_code == 200, answer.text
    assert answer.json()["checks"] == ["proof", "status: revocation"]
    server.service.revoke(award.verification_code, "issued in error")
    answer = server.post("/credentials/verify", {"verifiableCredential": server.ob3(award)}, token=None)
    assert answer.status_code == 400 and answer.json()["errors"] == ["status: revocation"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"issuer": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"},
            "the issuer must be one of ours",
        ),
        ({"validUntil": "2025-01-01T00:00:00Z"}, "validUntil is before validFrom"),
        ({"credentialSubject": {}}, "at least one claim"),
        ({"credentialSubject": {"id": SUBJECT, "undefinedClaim": 1}}, "not defined by any @context"),
        (
            {"@context": ["https://www.w3.org/ns/credentials/v2", "https://example.org/unknown/v1"]},
            "not bundled",
        ),
    ],
)
def test_an_invalid_credential_is_not_signed(server: Server, change: dict[str, Any], problem: str) -> None:
    answer = server.post("/credentials/issue", {"credential": {**credential(server.did_key), **change}})
    assert answer.status_code == 400
    assert any(problem in p for p in answer.json()["errors"]), answer.json()


def test_issuing_needs_the_token_before_the_body_is_read(server: Server) -> None:
    for token in (None, "wrong"):
        answer = server.post("/credentials/issue", {"credential": credential(server.did_key)}, token=token)
        assert answer.status_code == 401
    raw = httpx.post(f"{server.url}/credentials/issue", content=b"{" * 1000, timeout=10)
    assert raw.status_code == 401


def test_issuing_does_not_exist_without_a_token_configured(tmp_path: Any) -> None:
    from fastapi.testclient import TestClient

    from services.backpack.app import create_app

    settings = Settings(data_dir=tmp_path, public_url="http://127.0.0.1:9")
    migrate(settings.db_url)
    with TestClient(create_app(settings)) as client:
        answer = client.post(
            "/credentials/issue", json={"credential": {}}, headers={"Authorization": "Bearer x"}
        )
    assert answer.status_code == 404


def test_a_status_entry_on_a_list_of_the_credentials_own_issuer(server: Server) -> None:
    """`options.credentialStatus` puts the credential on a VC-API status list, signed as its issuer (a
    verifier checks that the list's issuer is the credential's), apart from the awards' lists."""
    options = {"credentialStatus": {"type": "BitstringStatusListEntry"}}
    issued = server.post("/credentials/issue", {"credential": credential(server.did_key), "options": options})
    assert issued.status_code == 201, issued.text
    signed = issued.json()["verifiableCredential"]
    entry = signed["credentialStatus"]
    assert entry["type"] == "BitstringStatusListEntry" and entry["statusPurpose"] == "revocation"
    status_list = httpx.get(entry["statusListCredential"], timeout=10).json()
    assert status_list["issuer"] == server.did_key
    assert int(entry["statusListCredential"].rsplit("/", 1)[1]) >= 1_000_000
    independent = verify_ob3("di", signed, base_url=server.url)
    assert independent["verified"] and independent["statusChecked"], independent["errors"]
    assert independent["revoked"] is False
    answer = server.post("/credentials/verify", {"verifiableCredential": signed}, token=None)
    assert answer.json()["checks"] == ["proof", "status: revocation"]
    refused = server.post(
        "/credentials/issue",
        {"credential": credential(server.did_key), "options": {"credentialStatus": {"type": "Other"}}},
    )
    assert refused.status_code == 400


def test_a_presentation_is_verified_with_the_verifiers_challenge_and_what_it_holds(server: Server) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from ebackpack.domain.credentials.keys import SigningKey

    held = server.post("/credentials/issue", {"credential": credential(server.did_key)}).json()
    holder_key = SigningKey("holder-1", "Ed25519", ed25519.Ed25519PrivateKey.generate())
    holder = f"did:key:{holder_key.public_multibase()}"
    presentation = {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiablePresentation"],
        "holder": holder,
        "verifiableCredential": [held["verifiableCredential"]],
    }
    method = f"{holder}#{holder.removeprefix('did:key:')}"
    signed = _sign_presentation(presentation, holder_key, method, challenge="c-123", domain="example.org")
    verify = {"verifiablePresentation": signed, "options": {"challenge": "c-123", "domain": "example.org"}}
    answer = server.post("/presentations/verify", verify, token=None)
    assert answer.status_code == 200, answer.text
    assert answer.json()["checks"] == ["presentation proof", "verifiableCredential[0]: proof"]
    replayed = {"verifiablePresentation": signed, "options": {"challenge": "c-456"}}
    assert server.post("/presentations/verify", replayed, token=None).status_code == 400
    unsigned_asked = {"verifiablePresentation": presentation, "options": {"challenge": "c-123"}}
    assert server.post("/presentations/verify", unsigned_asked, token=None).status_code == 400
    as_string = presentation | {"verifiableCredential": ["https://example.org/credential/1"]}
    refused = server.post("/presentations/verify", {"verifiablePresentation": as_string}, token=None)
    assert refused.status_code == 400 and "not a string" in refused.text


def _sign_presentation(
    presentation: dict[str, Any], key: Any, method: str, *, challenge: str, domain: str
) -> dict[str, Any]:
    """An eddsa-rdfc-2022 proof for authentication, as a holder's wallet makes one."""
    import base58

    from ebackpack.domain.credentials import dataintegrity
    from ebackpack.domain.credentials.jsonld import canonize

    proof = {
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-rdfc-2022",
        "created": "2026-12-07T10:00:00Z",
        "verificationMethod": method,
        "proofPurpose": "authentication",
        "challenge": challenge,
        "domain": domain,
    }
    options = {"@context": presentation["@context"], **proof}
    signature = key.private_key.sign(dataintegrity.hash_data(canonize(options), canonize(presentation)))
    return presentation | {"proof": proof | {"proofValue": "z" + base58.b58encode(signature).decode()}}


def test_a_credential_signed_here_is_revoked_through_the_status_update(server: Server) -> None:
    """VC-API's status update sets the credential's bit: our verify and @digitalbazaar/vc both say so."""
    unsigned = credential(server.did_key, id="urn:uuid:3f1a9c52-7d0e-4c8b-9a61-2b5e8d4f7c10")
    options = {"credentialStatus": {"type": "BitstringStatusListEntry"}}
    signed = server.post("/credentials/issue", {"credential": unsigned, "options": options}).json()
    shown = {"verifiableCredential": signed["verifiableCredential"]}
    assert server.post("/credentials/verify", shown, token=None).status_code == 200
    change = {
        "credentialId": unsigned["id"],
        "credentialStatus": [{"type": "BitstringStatusListEntry", "status": "revoked"}],
    }
    assert server.post("/credentials/status", change, token=None).status_code == 401
    assert server.post("/credentials/status", change).status_code == 200
    answer = server.post("/credentials/verify", shown, token=None)
    assert answer.status_code == 400 and answer.json()["errors"] == ["status: revocation"]
    independent = verify_ob3("di", signed["verifiableCredential"], base_url=server.url)
    assert independent["statusChecked"] and independent["revoked"] is True
    unknown = {**change, "credentialId": "urn:uuid:00000000-0000-4000-8000-000000000000"}
    assert server.post("/credentials/status", unknown).status_code == 404
