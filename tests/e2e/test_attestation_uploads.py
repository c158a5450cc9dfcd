"""A learner uploads external attestations through the backpack API; the importer worker on the real
broker and S3 server turns them into records, rejects what it must, and keeps going."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from ebackpack.adapters.storage import ObjectStore
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.workers import Worker
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import ATTESTATION_UPLOADS, ATTESTATIONS, dlq
from schemas import AttestationImportedMessage, AttestationRejectedMessage, DeadLetterMessage
from services.backpack.auth import issue_token
from tests.builders import wait_for
from tests.conftest import WebServer

pytestmark = pytest.mark.e2e
EXTERNAL = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "external"
LEARNER, OTHER = 5722, 5723
BILLION_LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>
<svg xmlns="http://www.w3.org/2000/svg"><text>&b;</text></svg>"""


def auth(settings: Settings, learner: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings, learner)}"}


def upload(
    client: httpx.Client, settings: Settings, name: str, data: bytes, learner: int = LEARNER
) -> httpx.Response:
    return client.post("/api/attestations", files={"file": (name, data)}, headers=auth(settings, learner))


def settled(client: httpx.Client, settings: Settings, attestation_id: str) -> dict[str, Any]:
    def state() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(
            f"/api/attestations/{attestation_id}", headers=auth(settings, LEARNER)
        ).json()
        return body if body["state"] != "received" else None

    return wait_for(state, seconds=60, what=f"attestation {attestation_id} imported or rejected")


@pytest.fixture
def backpack(settings: Settings, web_socket: Any) -> Any:
    settings = settings.model_copy(update={"import_max_upload_bytes": 1_000_000})
    prepare(settings)
    worker = Worker("importer", settings)
    worker.start()
    try:
        with (
            WebServer(settings, web_socket) as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):
            yield settings, client
    finally:
        worker.stop()


def test_uploads_are_stored_imported_and_announced_and_poison_is_dead_lettered(backpack: Any) -> None:
    settings, client = backpack
    badge = upload(
        client, settings, "simple.json", (EXTERNAL / "ob3-1edtech" / "simple-json.png").read_bytes()
    )
    hostile = upload(client, settings, "laughs.svg", BILLION_LAUGHS)
    europass = upload(
        client, settings, "diploma.jsonld", (EXTERNAL / "europass-edc" / "edc-mc-signed.jsonld").read_bytes()
    )
    assert [r.status_code for r in (badge, hostile, europass)] == [202, 202, 202], hostile.text

    imported = settled(client, settings, badge.json()["id"])
    rejected = settled(client, settings, hostile.json()["id"])
    sealed = settled(client, settings, europass.json()["id"])

    assert imported["state"] == "imported" and imported["media_type"] == "image/png"
    assert imported["record"]["source_format"] == "ob3-png"
    assert imported["record"]["verification"]["status"] == "signature valid but issuer not known"
    assert rejected["state"] == "rejected" and "refused" in rejected["rejection_reason"]
    assert sealed["record"]["source_format"] == "europass-edc"  # the upload after a hostile one works
    listed = client.get("/api/attestations", headers=auth(settings, LEARNER)).json()
    assert {a["id"] for a in listed} == {badge.json()["id"], hostile.json()["id"], europass.json()["id"]}

    poison = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    poison.send(settings.topic(ATTESTATION_UPLOADS), key=b"5722", value=b'{"not": "an upload event"}').get(10)
    poison.close()
    letters = wait_for(
        lambda: read_topics(settings, [settings.topic(dlq(ATTESTATION_UPLOADS))], idle_ms=500),
        seconds=60,
        what="the malformed upload event in the dead-letter topic",
    )
    letter = DeadLetterMessage.model_validate_json(letters[0].value).data
    assert letter.consumer == "importer" and "AttestationUploaded" in letter.reason

    events = [r.value for r in read_topics(settings, [settings.topic(ATTESTATIONS)], idle_ms=500)]
    kinds = {AttestationImportedMessage.TYPE: 0, AttestationRejectedMessage.TYPE: 0}
    for event in events:
        kinds[next(t for t in kinds if t.encode() in event)] += 1
    assert kinds == {AttestationImportedMessage.TYPE: 2, AttestationRejectedMessage.TYPE: 1}


def test_bad_uploads_get_a_precise_answer_and_store_nothing(backpack: Any) -> None:
    settings, client = backpack
    store = ObjectStore(settings)

    too_big = upload(client, settings, "big.pdf", b"%PDF-1.7\n" + b"0" * 10_000_000)
    folders = upload(client, settings, "../../etc/passwd", b'{"a": 1}')
    program = upload(client, settings, "cert.pdf", b"\x7fELF\x02\x01\x01 not a certificate")
    anonymous = client.post("/api/attestations", files={"file": ("a.json", b"{}")})

    assert too_big.status_code == 413 and "limit is 1,000,000 bytes" in too_big.json()["detail"]
    assert folders.status_code == 400 and "path separators" in folders.json()["detail"]
    assert program.status_code == 415 and "unsupported file type" in program.json()["detail"]
    assert anonymous.status_code == 401
    assert list(store.keys("attestations/")) == []


def test_a_learner_sees_rechecks_and_deletes_only_their_own(backpack: Any) -> None:
    settings, client = backpack
    mine = upload(
        client, settings, "simple.jwt", (EXTERNAL / "ob3-1edtech" / "simple.jwt").read_bytes()
    ).json()
    path = f"/api/attestations/{mine['id']}"

    assert client.get(path, headers=auth(settings, OTHER)).status_code == 404
    assert client.get(f"{path}/original", headers=auth(settings, OTHER)).status_code == 404
    assert client.delete(path, headers=auth(settings, OTHER)).status_code == 404
    checked = settled(client, settings, mine["id"])["checked_at"]
    assert client.post(f"{path}/recheck", headers=auth(settings, OTHER)).status_code == 404
    assert client.post(f"{path}/recheck", headers=auth(settings, LEARNER)).json()["announced"] is True
    wait_for(
        lambda: client.get(path, headers=auth(settings, LEARNER)).json()["checked_at"] != checked,
        seconds=60,
        what="the re-check on demand",
    )
    original = client.get(f"{path}/original", headers=auth(settings, LEARNER))
    assert original.content == (EXTERNAL / "ob3-1edtech" / "simple.jwt").read_bytes()
    assert original.headers["content-disposition"].startswith("attachment")

    assert client.delete(path, headers=auth(settings, LEARNER)).status_code == 204
    assert client.get(path, headers=auth(settings, LEARNER)).status_code == 404
    assert list(ObjectStore(settings).keys(f"attestations/{LEARNER}/")) == []
