"""A channel that is down for everyone (SMTP server unreachable) is an outage: the notifier keeps trying
for as long as it lasts, past its attempt limit, and no dead letter comes of it; a failure of one message
(the server answers "try later" for this recipient) still gives up after the limit. Real SMTP server
(aiosmtpd), real issuer service on SQLite, the notifier service with a clock the test moves."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from ebackpack.adapters.persistence.engine import make_engine, migrate, session_factory
from ebackpack.config import Settings
from ebackpack.dev.sample_data import default_dataset
from ebackpack.dev.stack import free_port
from ebackpack.domain.rules import load_rules
from services.gateway.profiles import store_profiles
from services.issuer.service import IssuerService
from services.notifier.service import NotifierService, Tuning
from tests.builders import completion

pytestmark = pytest.mark.integration

ACCESSIBILITY = 44  # badge only: its e-mail does not wait for a PDF
JAN = 5722
COMPLETED = datetime(2026, 1, 12, 10, 30, tzinfo=UTC)
LIMIT = 3


class Inbox:
    def __init__(self, rcpt_answer: str = "250 OK") -> None:
        self.rcpt_answer = rcpt_answer
        self.messages: list[Any] = []

    async def handle_RCPT(
        self,
        server: Any,
        session: Any,
        envelope: Any,
        address: str,  # noqa: N802
        rcpt_options: list[str],
    ) -> str:
        if self.rcpt_answer.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self.rcpt_answer

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"


class World:
    def __init__(self, tmp_path: Path) -> None:
        database = f"sqlite:///{tmp_path / 'notifier.db'}"
        migrate(database)
        self.sessions = session_factory(make_engine(database))
        store_profiles(self.sessions, default_dataset().profiles)
        self.port = free_port()
        self.settings = Settings(
            data_dir=tmp_path,
            database_url=database,
            smtp_host="127.0.0.1",
            smtp_port=self.port,
            notify_moodle_messages=False,
        )
        self.now = datetime(2026, 2, 1, tzinfo=UTC)
        rules = load_rules(self.settings.rules_file)
        tuning = Tuning(max_attempts=LIMIT, retry_first_delay=60, retry_max_delay=600, send_timeout=2)
        self.notifier = NotifierService(self.sessions, rules, self.settings, tuning, clock=lambda: self.now)
        issued = IssuerService(self.sessions, rules, self.settings).handle(
            completion(JAN, ACCESSIBILITY, COMPLETED)
        )
        (self.key,) = self.notifier.accept(
            next(e for e in issued if e.topic.endswith("credentials")).payload.encode()
        )

    def attempt(self) -> str:
        outcome = self.notifier.deliver(self.key)
        self.now += timedelta(hours=1)  # past any retry delay
        return outcome.state


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_an_unreachable_smtp_server_is_retried_past_the_limit_without_a_dead_letter(world: World) -> None:
    states = [world.attempt() for _ in range(3 * LIMIT)]  # nothing listens on the port
    assert states == ["failed"] * (3 * LIMIT)
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=world.port)
    controller.start()
    try:
        assert world.attempt() == "sent"
    finally:
        controller.stop()
    assert len(inbox.messages) == 1


def test_a_failure_of_this_message_still_gives_up_after_the_limit(world: World) -> None:
    controller = Controller(Inbox("451 4.3.0 mailbox busy, try later"), hostname="127.0.0.1", port=world.port)
    controller.start()
    try:
        states = [world.attempt() for _ in range(LIMIT)]
    finally:
        controller.stop()
    assert states == ["failed"] * (LIMIT - 1) + ["gave-up"]
