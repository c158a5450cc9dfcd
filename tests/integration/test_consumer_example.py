"""The example consumer of docs/consumers.md, run against real credential events on the embedded broker:
the contract it relies on (schemas, keys, redelivery, unknown types, committed offsets) holds."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from kafka import KafkaProducer

from ebackpack.bootstrap import prepare
from ebackpack.config import SAMPLE_DIR, Settings
from ebackpack.dev.sample_data import default_dataset
from ebackpack.domain.rules import load_rules
from ebackpack.streaming.topics import CREDENTIALS
from services.gateway.profiles import store_profiles
from services.issuer.service import IssuerService
from tests.builders import completion

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "credential_consumer.py"


def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("credential_consumer", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module's annotations through it
    spec.loader.exec_module(module)
    return module


def test_the_documented_consumer_follows_issued_revoked_and_erased_credentials(settings: Settings) -> None:
    sessions = prepare(settings)
    store_profiles(sessions, default_dataset().profiles)
    issuer = IssuerService(sessions, load_rules(SAMPLE_DIR / "rules.toml"), settings)
    when = datetime(2026, 3, 1, tzinfo=UTC)
    rows = issuer.handle(completion(5722, 42, when)) + issuer.handle(completion(5723, 42, when))
    issued = [r for r in rows if r.topic == settings.topic(CREDENTIALS)]
    revoked = issuer.revoke(issued[0].credential_id, "issued in error")
    erased_learner = 5724
    rows += issuer.handle(completion(erased_learner, 42, when))
    issued = [r for r in rows if r.topic == settings.topic(CREDENTIALS)]
    issuer.erase(erased_learner)  # Moodle deleted the user
    with sessions() as session:
        from ebackpack.adapters.persistence.tables import OutboxRow

        revocation = (
            session.query(OutboxRow)
            .filter(
                OutboxRow.credential_id == revoked.credential_id, OutboxRow.payload.contains("revoked.v1")
            )
            .one()
        )
        erasure = session.query(OutboxRow).filter(OutboxRow.payload.contains("credential.erased.v1")).one()
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    for row in [*issued, issued[0], revocation, erasure]:  # the first issued event is delivered twice
        producer.send(row.topic, key=row.key.encode() if row.key else None, value=row.payload.encode())
    future_type = {
        "specversion": "1.0",
        "id": "x-1",
        "source": "urn:test",
        "type": "pl.ebackpack.credential.renewed.v9",
        "time": when.isoformat(),
        "data": {},
    }
    producer.send(settings.topic(CREDENTIALS), key=b"5722", value=json.dumps(future_type).encode())
    producer.flush()
    producer.close()

    consumer = example()
    view = consumer.consume(
        settings.kafka_bootstrap,
        f"{settings.topic_prefix}downstream",
        settings.topic(CREDENTIALS),
        idle_ms=2000,
    )

    first, second = issued[0].credential_id, issued[1].credential_id
    by_learner = {learner: creds for learner, creds in view.status.items()}
    assert by_learner[5722] == {first: "revoked"} and by_learner[5723] == {second: "valid"}
    assert erased_learner not in by_learner  # issued, then erased: nothing of theirs is kept
    assert view.skipped == 1  # the unknown future type is skipped, not fatal
    again = consumer.consume(
        settings.kafka_bootstrap,
        f"{settings.topic_prefix}downstream",
        settings.topic(CREDENTIALS),
        idle_ms=1500,
    )
    assert again.status == {}  # offsets were committed after the work: nothing is read twice
