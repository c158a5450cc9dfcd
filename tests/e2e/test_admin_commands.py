"""Revocation and re-render from the admin pages are commands for the issuer (`credentials.commands`).

Over HTTP against the running backpack, with a running issuer worker: a revocation is published, carried
out by the issuer and announced on `credentials`; the page says whether it already took effect. A re-render
asks for as many certificates as the course has. A command naming no credential is dead-lettered. With
the broker unreachable the admin gets a 503 and nothing changes.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.persistence.tables import AwardRow
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.sample_data import default_dataset
from ebackpack.dev.workers import Worker
from ebackpack.domain.rules import load_rules
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import CREDENTIAL_COMMANDS, CREDENTIALS, RENDER_REQUESTS, dlq
from schemas import (
    CertificateRenderRequestMessage,
    CredentialRevokedMessage,
    CredentialRevokeRequested,
    CredentialRevokeRequestedMessage,
    DeadLetterMessage,
)
from services.backpack.app import create_app
from services.backpack.i18n import translate
from services.gateway.profiles import store_profiles
from services.issuer.service import IssuerService
from tests.builders import completion, wait_for
from tests.conftest import WebServer

pytestmark = pytest.mark.e2e

ALICE, BOB = 5722, 5723
COURSE = 42  # python-basics: badge and certificate
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
FLASH = re.compile(r'role="status">\s*<p>([^<]*)</p>')
ENGLISH = {"accept-language": "en"}


@dataclass
class World:
    settings: Settings
    sessions: sessionmaker[Session]
    codes: dict[int, str]  # learner -> verification code of the course-42 award
    url: str
    issuer: Worker


@pytest.fixture
def world(settings: Settings, web_socket: socket.socket) -> Iterator[World]:
    settings = settings.model_copy(update={"dev_login": True})
    sessions = prepare(settings)
    store_profiles(sessions, default_dataset().profiles)
    service = IssuerService(sessions, load_rules(settings.rules_file), settings)
    for learner in (ALICE, BOB):
        service.handle(completion(learner, COURSE, datetime(2026, 1, 12, tzinfo=UTC)))
    with sessions() as s:
        codes = {a.learner_id: a.verification_code for a in s.scalars(select(AwardRow))}
    issuer = Worker("issuer", settings)
    issuer.start()
    try:
        with WebServer(settings, web_socket) as server:
            yield World(settings, sessions, codes, server.url, issuer)
    finally:
        issuer.stop()


class Admin:
    """An administrator's browser without JavaScript: cookies, the CSRF token, redirects not followed."""

    def __init__(self, http: httpx.Client | TestClient) -> None:
        self.http = http
        self.csrf = self._token("/login")
        answer = self.http.post("/login/dev", data={"csrf_token": self.csrf, "account": "admin"})
        assert answer.status_code == 303, answer.text
        self.csrf = self._token("/login")  # a new session, a new token

    def _token(self, path: str) -> str:
        found = CSRF_FIELD.search(self.http.get(path).text)
        assert found, f"no CSRF token on {path}"
        return found.group(1)

    def post(self, path: str, **fields: str) -> httpx.Response:
        return self.http.post(path, data={"csrf_token": self.csrf, **fields})

    def flash(self, path: str) -> str:
        """The one-time message the next page shows."""
        found = FLASH.search(self.http.get(path).text)
        assert found, f"no message on {path}"
        return found.group(1)


def status_of(sessions: sessionmaker[Session], code: str) -> str:
    with sessions() as s:
        award = s.scalars(select(AwardRow).where(AwardRow.verification_code == code)).one()
        return award.status


def topic_values(settings: Settings, topic: str) -> list[bytes]:
    return [record.value for record in read_topics(settings, [settings.topic(topic)], idle_ms=500)]


def test_an_admin_revocation_is_carried_out_and_announced_by_the_issuer(world: World) -> None:
    code, reason = world.codes[ALICE], "Egzamin zdawała inna osoba"
    with httpx.Client(base_url=world.url, follow_redirects=False, timeout=60, headers=ENGLISH) as http:
        admin = Admin(http)
        back = f"/admin/courses/{COURSE}"
        answer = admin.post(f"/admin/credentials/{code}/revoke", reason=reason, back=back)
        assert answer.status_code == 303 and answer.headers["location"] == back
        said = admin.flash(back)
        done = translate("{code} was revoked.", "en", code=code)
        requested = translate(
            "Revocation of {code} requested; it takes effect within seconds.", "en", code=code
        )
        assert said in (done, requested)
        if said == done:  # the page saw it in the database before answering
            assert status_of(world.sessions, code) == "revoked"
        wait_for(lambda: status_of(world.sessions, code) == "revoked", 60, "the revocation", [world.issuer])
        assert status_of(world.sessions, world.codes[BOB]) == "issued"

        def revoked_event() -> CredentialRevokedMessage | None:
            for value in topic_values(world.settings, CREDENTIALS):
                if b"credential.revoked" in value:
                    return CredentialRevokedMessage.model_validate_json(value)
            return None

        event = wait_for(revoked_event, 60, "the credential-revoked event", [world.issuer])
        assert (event.data.verification_code, event.data.reason) == (code, reason)

        # Asked again (a second click, another reason): already revoked, the first reason stands.
        again = admin.post(f"/admin/credentials/{code}/revoke", reason="another reason", back=back)
        assert again.status_code == 303 and admin.flash(back) == done
        with world.sessions() as s:
            award = s.scalars(select(AwardRow).where(AwardRow.verification_code == code)).one()
            assert award.revocation_reason == reason

        unknown = admin.post("/admin/credentials/AAAA-BBBB-CCCC/revoke", reason="no such thing")
        assert unknown.status_code == 404


def test_a_rerender_asks_for_each_certificate_of_the_course(world: World) -> None:
    with httpx.Client(base_url=world.url, follow_redirects=False, timeout=60, headers=ENGLISH) as http:
        admin = Admin(http)
        answer = admin.post(f"/admin/courses/{COURSE}/rerender")
        assert answer.status_code == 303
        assert admin.flash(f"/admin/courses/{COURSE}") == translate(
            "{n} certificates will be rendered again.", "en", n=2
        )

    def rerender_requests() -> set[str]:
        found = set()
        for value in topic_values(world.settings, RENDER_REQUESTS):
            request = CertificateRenderRequestMessage.model_validate_json(value).data
            if request.rerender:
                found.add(request.verification_code)
        return found if len(found) == 2 else set()

    assert wait_for(rerender_requests, 60, "two re-render requests", [world.issuer]) == set(
        world.codes.values()
    )


def test_a_command_naming_no_credential_is_dead_lettered(world: World) -> None:
    command = CredentialRevokeRequestedMessage.build(
        id="revoke-nothing",
        source="tests",
        subject="no-such-credential",
        data=CredentialRevokeRequested(
            credential_id="no-such-credential", verification_code="AAAA-BBBB-CCCC", reason="test"
        ),
    )
    producer = KafkaProducer(bootstrap_servers=world.settings.kafka_bootstrap.split(","), acks="all")
    try:
        producer.send(
            world.settings.topic(CREDENTIAL_COMMANDS), key=b"no-such-credential", value=command.to_bytes()
        ).get(timeout=30)
    finally:
        producer.close()

    def dead_letter() -> DeadLetterMessage | None:
        values = topic_values(world.settings, dlq(CREDENTIAL_COMMANDS))
        return DeadLetterMessage.model_validate_json(values[0]) if values else None

    letter = wait_for(dead_letter, 60, "the dead letter", [world.issuer])
    assert "no-such-credential" in letter.data.reason
    assert {status_of(world.sessions, code) for code in world.codes.values()} == {"issued"}


def test_with_the_broker_away_the_admin_is_told_to_retry_and_nothing_changes(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"dev_login": True})
    sessions = prepare(settings)
    store_profiles(sessions, default_dataset().profiles)
    IssuerService(sessions, load_rules(settings.rules_file), settings).handle(
        completion(ALICE, COURSE, datetime(2026, 1, 12, tzinfo=UTC))
    )
    with sessions() as s:
        code = s.scalars(select(AwardRow)).one().verification_code
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # a port nobody listens on
    away = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{closed.getsockname()[1]}"})
    try:
        with TestClient(create_app(away), base_url=settings.public_url, headers=ENGLISH) as http:
            http.follow_redirects = False
            admin = Admin(http)
            answer = admin.post(f"/admin/credentials/{code}/revoke", reason="fraud")
            assert answer.status_code == 503
            assert "nothing was revoked" in answer.text and "Try again" in answer.text
            assert admin.post(f"/admin/courses/{COURSE}/rerender").status_code == 503
    finally:
        closed.close()
    assert status_of(sessions, code) == "issued"
