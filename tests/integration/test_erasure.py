"""The right to erasure as events: Moodle deletes a user, the issuer erases its part and announces it, and
every other owner of the learner's data erases its own.

Real components: the issuer, renderer, importer and notifier as worker processes on the embedded broker,
SeaweedFS for the PDFs and uploads, SQLite; the backpack served by uvicorn for its sessions and links.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.persistence.engine import make_engine, migrate, session_factory
from ebackpack.adapters.persistence.tables import (
    AttestationRow,
    AwardRow,
    CertificateRow,
    Learner,
    NotificationPreferenceRow,
    NotificationRow,
    NotifierPdfRow,
    OutboxRow,
    ShareRow,
    SignedCredentialRow,
    WebSessionRow,
)
from ebackpack.adapters.storage import ObjectStore
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.sample_data import default_dataset
from ebackpack.dev.workers import Worker
from ebackpack.domain.rules import load_rules
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import (
    ATTESTATION_UPLOADS,
    CREDENTIALS,
    LEARNERS_ERASED,
    MOODLE_EVENTS,
    RENDER_REQUESTS,
    dlq,
)
from schemas import CredentialErasedMessage, LearnerErasedMessage
from services.backpack.session import User, WebSessions
from services.backpack.shares import Shares
from services.gateway.events import moodle_message
from services.gateway.profiles import store_profiles
from services.issuer.service import IssuerService
from tests.builders import committed, completion, user_deleted_event, wait_for
from tests.conftest import WebServer

pytestmark = pytest.mark.integration
GONE, STAYS = 5722, 5723  # two learners of the sample profiles
COURSE = 42  # python-basics: badge and certificate
WHEN = datetime(2026, 3, 2, tzinfo=UTC)
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def user_deleted(settings: Settings, learner: int) -> tuple[bytes, bytes]:
    """(key, value) as the gateway publishes Moodle's user_deleted (without `other`)."""
    event = user_deleted_event(learner, int(WHEN.timestamp()) + 86400)
    _id, (key, value) = moodle_message(settings.site_id, event)
    return key or str(learner).encode(), value


def credentials_of(sessions: sessionmaker[Session], learner: int) -> dict[str, str]:
    """credential id -> verification code"""
    with sessions() as s:
        query = select(AwardRow.credential_id, AwardRow.verification_code).where(
            AwardRow.learner_id == learner
        )
        return {credential_id: code for credential_id, code in s.execute(query)}


# --- the issuer's part and the backpack's rows, on SQLite and PostgreSQL --------------------------------


def test_the_issuer_saves_the_erasure_events_once_and_the_backpack_lets_go_on_either_database(
    database_url: str, tmp_path: Path
) -> None:
    migrate(database_url)
    sessions = session_factory(make_engine(database_url))
    store_profiles(sessions, default_dataset().profiles)
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    issuer = IssuerService(sessions, load_rules(settings.rules_file), settings)
    for learner in (GONE, STAYS):
        issuer.handle(completion(learner, COURSE, WHEN))
    (gone_id,) = credentials_of(sessions, GONE)
    with sessions.begin() as s:
        links = {
            a.learner_id: Shares(s).create(a.learner_id, a.credential_id, 30).token
            for a in s.scalars(select(AwardRow))
        }
    web = WebSessions(sessions)
    signed_in = {learner: web.open(User(learner, "learner", "", "test")) for learner in (GONE, STAYS)}

    assert issuer.erase(GONE) == 2  # learner.erased and one credential.erased
    assert issuer.erase(GONE) == 0  # Moodle's event again: nothing more to announce
    with sessions() as s:
        query = select(OutboxRow).where(OutboxRow.payload.contains(".erased.v1")).order_by(OutboxRow.topic)
        saved = [(row.topic, row.key, json.loads(row.payload)) for row in s.scalars(query)]
        assert (
            s.scalars(select(SignedCredentialRow).where(SignedCredentialRow.credential_id == gone_id)).all()
            == []
        )
        assert s.get(Learner, GONE) is None and s.get(Learner, STAYS) is not None
    assert [(topic, key, event["type"]) for topic, key, event in saved] == [
        (settings.topic(CREDENTIALS), str(GONE), CredentialErasedMessage.TYPE),
        (settings.topic(LEARNERS_ERASED), str(GONE), LearnerErasedMessage.TYPE),
    ]
    assert saved[1][2]["data"]["credential_ids"] == [gone_id]

    assert not web.alive(signed_in[GONE]) and web.alive(signed_in[STAYS])
    with sessions() as s:
        assert Shares(s).find(links[GONE]) is None and Shares(s).find(links[STAYS]) is not None
    web.open(User(STAYS, "learner", "", "test"))  # a sign-in deletes the erased learner's rows
    assert rows_of(sessions, WebSessionRow, GONE) == 0 and rows_of(sessions, ShareRow, GONE) == 0
    assert rows_of(sessions, WebSessionRow, STAYS) == 2 and rows_of(sessions, ShareRow, STAYS) == 1


# --- the backpack: sessions and public links end with the learner ------------------------------------


class Visitor:
    """A browser without JavaScript, signed in with the development login."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, follow_redirects=False, timeout=30)

    def csrf(self) -> str:
        found = CSRF_FIELD.search(self.http.get("/login").text)
        assert found, "no CSRF token in the login page's forms"
        return found.group(1)

    def log_in(self, learner: int) -> Visitor:
        answer = self.http.post("/login/dev", data={"csrf_token": self.csrf(), "account": str(learner)})
        assert answer.status_code == 303, answer.text
        return self


def rows_of(
    sessions: sessionmaker[Session], table: type[WebSessionRow] | type[ShareRow], learner: int
) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(table).where(table.learner_id == learner)) or 0


def test_an_erased_learners_sessions_end_and_their_links_stop_resolving(
    settings: Settings, web_socket: socket.socket
) -> None:
    settings = settings.model_copy(update={"dev_login": True})
    sessions = prepare(settings)
    store_profiles(sessions, default_dataset().profiles)
    issuer = IssuerService(sessions, load_rules(settings.rules_file), settings)
    for learner in (GONE, STAYS):
        issuer.handle(completion(learner, COURSE, WHEN))
    with sessions.begin() as s:
        links = {
            a.learner_id: Shares(s).create(a.learner_id, a.credential_id, 30).token
            for a in s.scalars(select(AwardRow))
        }
    with WebServer(settings, web_socket) as server:
        gone, stays = Visitor(server.url).log_in(GONE), Visitor(server.url).log_in(STAYS)
        public = httpx.Client(base_url=server.url, timeout=30)
        assert gone.http.get("/api/credentials").status_code == 200
        assert public.get(f"/s/{links[GONE]}").status_code == 200

        issuer.handle(user_deleted(settings, GONE)[1])  # the issuer's part, at once: the profile goes

        assert gone.http.get("/api/credentials").status_code == 401
        answer = gone.http.get("/certificates")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
        assert public.get(f"/s/{links[GONE]}").status_code == 404
        # Nobody else is touched.
        assert stays.http.get("/api/credentials").status_code == 200
        assert public.get(f"/s/{links[STAYS]}").status_code == 200

        # The rows are gone after the next sign-in, anyone's.
        assert rows_of(sessions, WebSessionRow, GONE) == 1 and rows_of(sessions, ShareRow, GONE) == 1
        Visitor(server.url).log_in(STAYS).http.close()
        assert rows_of(sessions, WebSessionRow, GONE) == 0 and rows_of(sessions, ShareRow, GONE) == 0
        assert rows_of(sessions, WebSessionRow, STAYS) == 2 and rows_of(sessions, ShareRow, STAYS) == 1
        for client in (gone.http, stays.http, public):
            client.close()


# --- the workers: each owner erases its part ----------------------------------------------------------


@dataclass
class Pipeline:
    settings: Settings
    sessions: sessionmaker[Session]
    objects: ObjectStore
    workers: list[Worker]


@pytest.fixture
def pipeline(settings: Settings) -> Iterator[Pipeline]:
    sessions = prepare(settings)
    store_profiles(sessions, default_dataset().profiles)
    workers = [Worker(name, settings) for name in ("issuer", "renderer", "importer", "notifier")]
    for worker in workers:
        worker.start()
    try:
        yield Pipeline(settings, sessions, ObjectStore(settings), workers)
    finally:
        for worker in workers:
            worker.stop()


def produce(settings: Settings, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap.split(","), acks="all")
    try:
        for topic, key, value in records:
            producer.send(settings.topic(topic), key=key, value=value).get(timeout=30)
    finally:
        producer.close()


def events(settings: Settings, topic: str, kind: str) -> list[dict[str, Any]]:
    """The events of this type on the topic, each once: consumers de-duplicate by id, as the contract
    says (the outbox relay may send an event again when its acknowledgement was late)."""
    found: dict[str, dict[str, Any]] = {}
    for record in read_topics(settings, [settings.topic(topic)], idle_ms=1000):
        event = json.loads(record.value) if record.value else {}
        if event.get("type") == kind:
            found.setdefault(event["id"], event)
    return list(found.values())


def leave_personal_data(pipe: Pipeline, learner: int, credential_id: str) -> None:
    """What the importer and the notifier keep of a learner (uploads, messages, preferences), and a PDF
    and an upload stored whose rows a crash never wrote."""
    now = datetime.now(UTC)
    pipe.objects.put(f"certificates/{credential_id}/orphan.pdf", b"%PDF- orphan", "application/pdf")
    pipe.objects.put(f"attestations/{learner}/orphan", b"{}", "application/json")
    pipe.objects.put(f"attestations/{learner}/a-{learner}", b"{}", "application/json")
    with pipe.sessions.begin() as s:
        s.add(
            AttestationRow(
                id=f"a-{learner}",
                learner_id=learner,
                state="imported",
                object_key=f"attestations/{learner}/a-{learner}",
                size=2,
                received_at=now,
            )
        )
        s.add(
            NotificationRow(
                event_id=f"issued-{credential_id}",
                channel="email",
                kind="issued",
                learner_id=learner,
                credential_id=credential_id,
                state="sent",
                attempts=1,
                created_at=now,
                updated_at=now,
                payload="{}",
            )
        )
        s.add(
            NotificationPreferenceRow(
                learner_id=learner, kind="expiry", channel="email", enabled=False, updated_at=now
            )
        )


def what_remains(pipe: Pipeline, learner: int, credentials: list[str]) -> dict[str, int]:
    """Per owner, how much of the learner's personal data is still there."""
    with pipe.sessions() as s:

        def count(table: Any, *where: Any) -> int:
            return s.scalar(select(func.count()).select_from(table).where(*where)) or 0

        return {
            "issuer: profile": count(Learner, Learner.id == learner),
            "issuer: signed credentials": count(
                SignedCredentialRow, SignedCredentialRow.credential_id.in_(credentials)
            ),
            "issuer: recipient hashes": count(
                AwardRow, AwardRow.learner_id == learner, AwardRow.recipient_hash.is_not(None)
            ),
            "renderer: certificate rows": count(
                CertificateRow, CertificateRow.credential_id.in_(credentials)
            ),
            "renderer: PDFs": sum(len(list(pipe.objects.keys(f"certificates/{c}/"))) for c in credentials),
            "importer: attestation rows": count(AttestationRow, AttestationRow.learner_id == learner),
            "importer: uploads": len(list(pipe.objects.keys(f"attestations/{learner}/"))),
            "notifier: notifications": count(NotificationRow, NotificationRow.learner_id == learner),
            "notifier: preferences": count(
                NotificationPreferenceRow, NotificationPreferenceRow.learner_id == learner
            ),
            "notifier: PDFs noted": count(NotifierPdfRow, NotifierPdfRow.credential_id.in_(credentials)),
        }


def erasure_outbox(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """(erasure events saved, events not yet announced)"""
    with sessions() as s:
        saved = s.scalar(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.payload.contains(".erased.v1"))
        )
        unsent = s.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.sent_at.is_(None)))
        return saved or 0, unsent or 0


DEAD_LETTER_TOPICS = (
    dlq(MOODLE_EVENTS),
    dlq(RENDER_REQUESTS),
    dlq(ATTESTATION_UPLOADS),
    "credentials.notifier.dlq",
)
OWNERS = ("renderer", "importer")  # consumer groups on learners.erased, besides the notifier's


def test_each_owner_erases_its_part_once_and_downstream_learns_of_each_credential(
    pipeline: Pipeline,
) -> None:
    pipe, settings = pipeline, pipeline.settings
    produce(
        settings,
        [
            (MOODLE_EVENTS, str(learner).encode(), completion(learner, COURSE, WHEN))
            for learner in (GONE, STAYS)
        ],
    )

    def rendered() -> bool:  # stored by the renderer, and noted by the notifier from certificates.rendered
        with pipe.sessions() as s:
            return all(
                s.scalar(select(func.count()).select_from(t)) == 2 for t in (CertificateRow, NotifierPdfRow)
            )

    wait_for(rendered, 300, "both certificates rendered", pipe.workers)
    gone, stays = credentials_of(pipe.sessions, GONE), credentials_of(pipe.sessions, STAYS)
    (gone_id,), (stays_id,) = gone, stays
    for learner, credential_id in ((GONE, gone_id), (STAYS, stays_id)):
        leave_personal_data(pipe, learner, credential_id)
    kept = what_remains(pipe, STAYS, [stays_id])
    before = what_remains(pipe, GONE, [gone_id])
    assert all(before.values()), before  # there is something of each kind to erase

    produce(settings, [(MOODLE_EVENTS, *user_deleted(settings, GONE))])
    wait_for(
        lambda: not any(what_remains(pipe, GONE, [gone_id]).values()),
        180,
        "every owner's part of the learner erased",
        pipe.workers,
    )
    assert what_remains(pipe, STAYS, [stays_id]) == kept

    # The award keeps its public part: the credential still verifies, naming no one.
    with pipe.sessions() as s:
        award = s.get(AwardRow, gone_id)
        assert award is not None and award.verification_code == gone[gone_id]
        assert (award.status, award.course_id) == ("issued", COURSE) and award.achievement_name
        assert award.recipient_salt is None and award.recipient_hash is None
        assert award.status_list is not None and award.status_index is not None

    # Downstream consumers learn of each credential; the other owners got one learner.erased.
    erased = wait_for(
        lambda: events(settings, CREDENTIALS, CredentialErasedMessage.TYPE),
        60,
        "credential.erased on the credentials topic",
        pipe.workers,
    )
    assert [CredentialErasedMessage.model_validate(e).data.credential_id for e in erased] == [gone_id]
    data = CredentialErasedMessage.model_validate(erased[0]).data
    assert (data.learner_id, data.verification_code) == (GONE, gone[gone_id])
    (learner_erased,) = events(settings, LEARNERS_ERASED, LearnerErasedMessage.TYPE)
    announced = LearnerErasedMessage.model_validate(learner_erased).data
    assert (announced.learner_id, announced.credential_ids) == (GONE, [gone_id])

    # Moodle's event again (a replay): nothing is saved, so nothing is announced again.
    saved = (2, 0)  # learner.erased and one credential.erased, both announced
    wait_for(
        lambda: erasure_outbox(pipe.sessions) == saved, 60, "the erasure events marked sent", pipe.workers
    )
    before_replay = committed(settings, settings.issuer_group, MOODLE_EVENTS)
    produce(settings, [(MOODLE_EVENTS, *user_deleted(settings, GONE))])
    wait_for(
        lambda: committed(settings, settings.issuer_group, MOODLE_EVENTS) > before_replay,
        120,
        "the issuer past the second user_deleted",
        pipe.workers,
    )
    assert erasure_outbox(pipe.sessions) == saved

    # learner.erased redelivered to every owner: nothing changes, nothing is dead-lettered.
    produce(settings, [(LEARNERS_ERASED, str(GONE).encode(), json.dumps(learner_erased).encode())])
    groups, on_topic = (
        (*OWNERS, settings.notify_group),
        len(read_topics(settings, [settings.topic(LEARNERS_ERASED)])),
    )
    wait_for(
        lambda: all(committed(settings, group, LEARNERS_ERASED) >= on_topic for group in groups),
        120,
        "every owner past the redelivered learner.erased",
        pipe.workers,
    )
    assert not any(what_remains(pipe, GONE, [gone_id]).values())
    assert what_remains(pipe, STAYS, [stays_id]) == kept
    assert len(events(settings, CREDENTIALS, CredentialErasedMessage.TYPE)) == 1
    letters = [r for topic in DEAD_LETTER_TOPICS for r in read_topics(settings, [settings.topic(topic)], 500)]
    assert letters == [], [json.loads(r.value)["data"].get("reason") for r in letters]
