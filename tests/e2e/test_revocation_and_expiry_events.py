"""Revocation and expiry as events, through a running issuer worker on the real broker.

The issuer signs with keys handed over in `EBACKPACK_SIGNING_KEYS` (the production path), a revocation
made beside it is announced on `credentials` within seconds, and a credential past its validity is
marked expired by the issuer's own scan and announced once.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from ebackpack.adapters.keystore import ensure_key_dir
from ebackpack.adapters.persistence.tables import AwardRow, SignedCredentialRow
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.sample_data import default_dataset
from ebackpack.dev.workers import Worker
from ebackpack.domain.credentials import dataintegrity
from ebackpack.domain.rules import load_rules
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import CREDENTIALS
from schemas import CredentialExpiredMessage, CredentialRevokedMessage
from services.gateway.profiles import store_profiles
from services.gateway.publisher import MoodleEventPublisher
from services.issuer.service import IssuerService
from tests.builders import completion, wait_for

pytestmark = pytest.mark.e2e
T = TypeVar("T")
RECENT, LONG_AGO = datetime(2026, 1, 12, tzinfo=UTC), datetime(2020, 3, 1, tzinfo=UTC)


def credential_events(settings: Settings) -> list[bytes]:
    return [record.value for record in read_topics(settings, [settings.topic(CREDENTIALS)], idle_ms=500)]


def test_revoked_and_expired_credentials_are_announced_by_the_running_issuer(
    settings: Settings, tmp_path: Path
) -> None:
    ring = ensure_key_dir(tmp_path / "vault")
    keys = json.dumps({key.kid: key.private_pem().decode() for key in ring.keys})
    settings = settings.model_copy(update={"signing_keys": SecretStr(keys), "expiry_scan_interval": 1.0})
    sessions = prepare(settings)
    store_profiles(sessions, default_dataset().profiles)
    worker = Worker("issuer", settings)
    worker.start()
    try:
        publisher = MoodleEventPublisher(settings)
        publisher.publish(
            [(b"5722", completion(5722, 42, RECENT)), (b"5723", completion(5723, 43, LONG_AGO))]
        )
        publisher.close()

        def both_awards() -> dict[int, AwardRow]:
            with sessions() as s:
                rows = s.scalars(select(AwardRow)).all()
            return {a.learner_id: a for a in rows} if len(rows) == 2 else {}

        awards = wait_for(both_awards, 90, "two awards", [worker])
        current, old = awards[5722], awards[5723]
        with sessions() as s:
            signed = s.get(SignedCredentialRow, (current.credential_id, "ob3-di"))
        assert signed is not None and signed.verification_method.endswith("#ed25519-1")
        public = {signed.verification_method: ring.current("Ed25519").private_key.public_key()}
        dataintegrity.verify(json.loads(signed.document), public.get)  # type: ignore[arg-type]

        service = IssuerService(sessions, load_rules(settings.rules_file), settings)
        revoked_at = time.monotonic()
        service.revoke(current.verification_code, "Certificate obtained by exam fraud")

        def revoked_event() -> CredentialRevokedMessage | None:
            for value in credential_events(settings):
                if b"credential.revoked" in value:
                    return CredentialRevokedMessage.model_validate_json(value)
            return None

        event = wait_for(revoked_event, 30, "the credential-revoked event", [worker])
        took = time.monotonic() - revoked_at
        assert event.data.credential_id == current.credential_id
        assert event.data.reason == "Certificate obtained by exam fraud"
        assert took < 15, f"revocation announced after {took:.1f} s"

        def expired_events() -> list[CredentialExpiredMessage]:
            return [
                CredentialExpiredMessage.model_validate_json(v)
                for v in credential_events(settings)
                if b"credential.expired" in v
            ]

        expired = wait_for(expired_events, 30, "the credential-expired event", [worker])
        assert [e.data.credential_id for e in expired] == [old.credential_id]
        time.sleep(3)  # more scans and relay rounds: still one expired event
        assert [e.data.credential_id for e in expired_events()] == [old.credential_id]
        with sessions() as s:
            statuses = {a.learner_id: a.status for a in s.scalars(select(AwardRow))}
        assert statuses == {5722: "revoked", 5723: "expired"}
    finally:
        worker.stop()
