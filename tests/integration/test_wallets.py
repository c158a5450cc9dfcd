"""A learner's credential into a wallet over OpenID4VCI 1.0 (pre-authorized code), received by a wallet
client nobody on this project wrote (`@openid4vc/openid4vci`, the client inside Credo wallets; see
tests/verifiers/wallet_client.py), and the received credentials checked by the same independent
verifiers as every other form of them (`@digitalbazaar/vc` with status, `jose`, the OB 3.0 JSON Schema).

The awards come from the issuer's service layer on the sample Moodle events; the backpack web app
serves the OpenID4VCI endpoints, the DID document and the status lists on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from ebackpack.adapters.persistence.tables import AwardRow, WalletCopyRow, WalletOfferRow
from ebackpack.bootstrap import Platform
from ebackpack.config import SAMPLE_DIR, Settings
from ebackpack.dev.sample_data import default_dataset
from ebackpack.domain.credentials import openid4vci
from schemas.moodle import LearnerProfile, Profiles
from services.backpack.wallets import Offer, OfferRefused, Wallets, copies_of
from services.gateway.profiles import store_profiles
from services.issuer.service import IssuerService
from tests.builders import completion, loopback_settings, sample_issued
from tests.conftest import WebServer, reserve_port
from tests.verifiers.ob3_verifier import OFFICIAL_SCHEMA, verify_ob3
from tests.verifiers.wallet_client import receive

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Issuer:
    service: IssuerService
    platform: Platform
    settings: Settings
    url: str

    def awards(self) -> list[AwardRow]:
        with self.platform.sessions() as session:
            return list(session.query(AwardRow).order_by(AwardRow.credential_id))

    def offer(self, award: AwardRow, configurations: list[str], **options: Any) -> Offer:
        with self.platform.sessions() as session:
            made = Wallets(session, self.platform).offer(
                award.credential_id,
                learner_id=award.learner_id,
                created_by="learner",
                configurations=configurations,
                **options,
            )
            session.commit()
        return made

    def copies(self, award: AwardRow) -> list[WalletCopyRow]:
        with self.platform.sessions() as session:
            return copies_of(session, award.learner_id, award.credential_id)


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issuer]:
    tmp = tmp_path_factory.mktemp("wallets")
    sock = reserve_port()
    settings = loopback_settings(tmp, sock.getsockname()[1], rules_file=SAMPLE_DIR / "rules.toml")
    service = sample_issued(settings)
    with WebServer(settings, sock) as server:
        yield Issuer(service, Platform(settings), settings, server.url)
    sock.close()


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def errors_of(report: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(e["step"], e["error"]) for e in report["errors"]]


@pytest.mark.parametrize("key", ["ed25519", "p256"])
def test_a_wallet_receives_the_jwt_credential_bound_to_its_key(issuer: Issuer, key: str) -> None:
    award = issuer.awards()[0]
    report = receive(issuer.offer(award, [openid4vci.JWT_VC]).uri, key=key)
    assert report["ok"], report["errors"]
    assert report["version_detected"] == "V1" and report["format"] == "jwt_vc_json"
    (token,) = report["credentials"]
    claims = jwt_claims(token)
    assert claims["sub"] == report["holder_did"] == claims["vc"]["credentialSubject"]["id"]
    assert claims["jti"] == claims["vc"]["id"] == f"urn:uuid:{award.credential_id}"
    assert claims["vc"]["credentialStatus"]["statusListIndex"] == str(award.status_index)
    verified = verify_ob3("jwt", token, base_url=issuer.url)
    assert verified["verified"], verified["errors"]
    assert verified["statusChecked"] and verified["revoked"] is False
    assert [c.holder for c in issuer.copies(award)][-1] == report["holder_did"]


@pytest.mark.parametrize("key", ["ed25519", "p256"])
def test_a_wallet_receives_the_data_integrity_credential_bound_to_its_key(issuer: Issuer, key: str) -> None:
    award = issuer.awards()[1]
    report = receive(issuer.offer(award, [openid4vci.LDP_VC]).uri, key=key)
    assert report["ok"], report["errors"]
    assert report["format"] == "ldp_vc"
    (credential,) = report["credentials"]
    assert credential["credentialSubject"]["id"] == report["holder_did"]
    assert report["holder_did"].startswith("did:key:z")
    assert credential["id"] == f"urn:uuid:{award.credential_id}"
    verified = verify_ob3("di", credential, base_url=issuer.url)
    assert verified["verified"], verified["errors"]
    assert verified["statusChecked"] and verified["revoked"] is False
    schema = verify_ob3("schema", credential, schema=OFFICIAL_SCHEMA)
    assert schema["valid"], schema["errors"]


def test_the_metadata_names_both_configurations_in_polish_and_english(issuer: Issuer) -> None:
    metadata = httpx.get(f"{issuer.url}/.well-known/openid-credential-issuer", timeout=10).json()
    assert metadata["credential_issuer"] == issuer.url
    configurations = metadata["credential_configurations_supported"]
    assert {c["format"] for c in configurations.values()} == {"jwt_vc_json", "ldp_vc"}
    for configuration in configurations.values():
        locales = {d["locale"] for d in configuration["credential_metadata"]["display"]}
        assert locales == {"pl", "en"}
        algorithms = configuration["proof_types_supported"]["jwt"]["proof_signing_alg_values_supported"]
        assert {"EdDSA", "ES256"} <= set(algorithms)
    server = httpx.get(f"{issuer.url}/.well-known/oauth-authorization-server", timeout=10)
    assert server.json()["issuer"] == issuer.url and "set-cookie" not in server.headers


def test_a_used_offer_is_refused(issuer: Issuer) -> None:
    report = receive(issuer.offer(issuer.awards()[2], [openid4vci.JWT_VC]).uri, mode="reuse")
    assert report["ok"] and report["second_token_issued"] is False
    assert errors_of(report) == [("token", "invalid_grant")]


def test_an_expired_offer_is_refused(issuer: Issuer) -> None:
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    made = issuer.offer(issuer.awards()[2], [openid4vci.LDP_VC], seconds=600, now=an_hour_ago)
    report = receive(made.uri)
    assert not report["ok"] and errors_of(report) == [("token", "invalid_grant")]


def test_a_wrong_transaction_code_is_refused_and_the_right_one_taken(issuer: Issuer) -> None:
    award = issuer.awards()[2]
    made = issuer.offer(award, [openid4vci.JWT_VC], with_tx_code=True)
    assert made.tx_code is not None and len(made.tx_code) == 6
    wrong = "000000" if made.tx_code != "000000" else "111111"
    refused = receive(made.uri, tx_code=wrong)
    assert errors_of(refused) == [("token", "invalid_grant")]
    accepted = receive(made.uri, tx_code=made.tx_code)
    assert accepted["ok"], accepted["errors"]


@pytest.mark.parametrize(
    ("mode", "error"), [("forged-proof", "invalid_proof"), ("stale-nonce", "invalid_nonce")]
)
def test_a_forged_proof_and_a_made_up_nonce_are_refused(issuer: Issuer, mode: str, error: str) -> None:
    award = issuer.awards()[3]
    copies_before = len(issuer.copies(award))
    report = receive(issuer.offer(award, [openid4vci.JWT_VC]).uri, mode=mode)
    assert not report["ok"] and errors_of(report) == [("credential", error)]
    assert len(issuer.copies(award)) == copies_before


def test_a_revocation_reaches_the_copy_in_the_wallet_and_no_new_offer_is_made(issuer: Issuer) -> None:
    award = issuer.awards()[-1]
    report = receive(issuer.offer(award, [openid4vci.LDP_VC]).uri)
    assert report["ok"], report["errors"]
    (credential,) = report["credentials"]
    issuer.service.revoke(award.verification_code, "issued in error")
    verified = verify_ob3("di", credential, base_url=issuer.url)
    assert verified["statusChecked"] and verified["revoked"] is True
    with pytest.raises(OfferRefused, match="revoked"):
        issuer.offer(award, [openid4vci.LDP_VC])


def test_the_command_line_prints_an_offer_a_wallet_takes(issuer: Issuer) -> None:
    award = issuer.awards()[4]
    env = {
        **os.environ,
        "EBACKPACK_DATA_DIR": str(issuer.settings.data_dir),
        "EBACKPACK_DATABASE_URL": issuer.settings.database_url or "",
        "EBACKPACK_PUBLIC_URL": issuer.url,
        "EBACKPACK_RULES_FILE": str(SAMPLE_DIR / "rules.toml"),
    }
    command = [sys.executable, "-m", "ebackpack.cli", "credential", "offer", award.verification_code]
    done = subprocess.run(
        [*command, "--format", "ldp_vc", "--ttl", "120"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    uri = done.stdout.strip().splitlines()[-1]
    assert uri.startswith("openid-credential-offer://?credential_offer=")
    report = receive(uri)
    assert report["ok"], report["errors"]
    assert report["credentials"][0]["credentialSubject"]["id"] == report["holder_did"]
    unknown = subprocess.run(
        [*command[:-1], "NO-SUCH-CODE"], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )
    assert unknown.returncode == 1 and "no credential" in unknown.stderr


def test_transaction_codes_are_not_guessed(issuer: Issuer) -> None:
    """Five wrong codes spend the offer: a million codes cannot be tried against it."""
    award = issuer.awards()[5]
    made = issuer.offer(award, [openid4vci.JWT_VC], with_tx_code=True)
    (code,) = parse_qs(urlsplit(made.uri).query)["credential_offer"]
    pre_authorized = json.loads(code)["grants"][openid4vci.PRE_AUTHORIZED_GRANT]["pre-authorized_code"]
    token_url = f"{issuer.url}{openid4vci.PATHS['token']}"
    form = {"grant_type": openid4vci.PRE_AUTHORIZED_GRANT, "pre-authorized_code": pre_authorized}
    wrong = "000000" if made.tx_code != "000000" else "111111"
    for _ in range(5):
        answer = httpx.post(token_url, data={**form, "tx_code": wrong}, timeout=10)
        assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")
    answer = httpx.post(token_url, data={**form, "tx_code": made.tx_code}, timeout=10)
    assert answer.status_code == 400 and "too many" in answer.json()["error_description"]


def test_a_request_without_a_valid_token_is_refused_unread(issuer: Issuer) -> None:
    url = f"{issuer.url}{openid4vci.PATHS['credential']}"
    answer = httpx.post(url, content=b"{" * 100, headers={"Authorization": "Bearer guessed"}, timeout=10)
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_token"
    assert answer.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert "set-cookie" not in answer.headers and answer.headers["cache-control"] == "no-store"


def test_the_learners_erasure_takes_their_wallet_copies_and_offers(issuer: Issuer) -> None:
    """A learner of their own, so the other tests keep theirs."""
    learner = 9901
    sample = default_dataset().profiles
    store_profiles(
        issuer.platform.sessions,
        Profiles(
            users=[
                LearnerProfile(id=learner, firstname="Ewa", lastname="Zapomniana", email="ewa@example.org")
            ],
            courses=sample.courses,
        ),
    )
    issuer.service.handle(completion(learner, 42, datetime(2026, 1, 12, tzinfo=UTC)))
    learner_awards = [a for a in issuer.awards() if a.learner_id == learner]
    award = learner_awards[0]
    report = receive(issuer.offer(award, [openid4vci.JWT_VC]).uri)
    assert report["ok"], report["errors"]
    open_offer = issuer.offer(award, [openid4vci.LDP_VC])
    assert issuer.copies(award)
    issuer.service.erase(award.learner_id)
    assert all(issuer.copies(a) == [] for a in learner_awards)
    with issuer.platform.sessions() as session:
        offers = session.scalars(select(WalletOfferRow).where(WalletOfferRow.learner_id == award.learner_id))
        assert list(offers) == []
    assert errors_of(receive(open_offer.uri)) == [("token", "invalid_grant")]
