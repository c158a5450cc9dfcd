"""The notifier's handlers against the fake unit of work and fake channels (tests/unit/notifier_fakes.py):
what is recorded for an issued credential, what a learner's choice skips, a certificate's message waiting
for its PDF, the retry schedule of a failed delivery and the dead letter after the last attempt."""

from __future__ import annotations

import dataclasses
import json
import smtplib
from datetime import UTC, datetime, timedelta

import pytest

from ebackpack.domain.rules import IssuerProfile, RuleBook
from schemas import (
    CertificateRendered,
    CertificateRenderedMessage,
    CredentialIssued,
    CredentialIssuedMessage,
    CredentialRevoked,
    CredentialRevokedMessage,
    DeadLetterMessage,
)
from schemas.credentials import Achievement, Origin
from services.notifier import handlers
from services.notifier.delivery import DEAD, FAILED, GAVE_UP, PENDING, SENT, SKIPPED, Key, RetrySchedule
from services.notifier.domain import Site
from services.notifier.handlers import Context, Senders
from services.notifier.repository import CredentialFacts, LearnerFacts
from services.notifier.tuning import Tuning
from tests.unit.notifier_fakes import FakeEmail, FakeMoodle, FakeUnitOfWork

JAN = 5722
CREDENTIAL = "9b2f4c1e-0000-4000-8000-000000000001"
EVENT = "issued-event-1"
ISSUED = datetime(2026, 1, 12, 10, 30, tzinfo=UTC)
ATTEMPTS = 3


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class World:
    """A learner with one credential, the fake unit of work holding them, both channels configured."""

    def __init__(self) -> None:
        self.uow = FakeUnitOfWork()
        state = self.uow.committed
        state.learners[JAN] = LearnerFacts(JAN, "Jan", "Kowalski", "jan.kowalski@example.org", "pl")
        state.credentials[CREDENTIAL] = CredentialFacts(
            credential_id=CREDENTIAL,
            learner_id=JAN,
            course_id=42,
            rule_id="python-basics",
            status="issued",
            achievement_name="Python Basics",
            verification_code="DCPX-JEAW-QFWX",
        )
        state.courses[42] = "Python Basics for Adult Learners"
        self.email, self.moodle, self.clock = FakeEmail(), FakeMoodle(), Clock()
        self.tuning = Tuning(
            max_attempts=ATTEMPTS, retry_first_delay=60, retry_max_delay=600, pdf_wait=600, pdf_poll=10
        )
        self.ctx = Context(
            senders=Senders(email=self.email, moodle=self.moodle),
            site=Site("Stowarzyszenie", "certyfikaty@example.org", "https://backpack.example.org", ""),
            rules=RuleBook(
                issuer=IssuerProfile(
                    name="Stowarzyszenie", url="https://example.org", email="c@example.org", country="PL"
                ),
                rules=[],
            ),
            mail_from="e-Backpack <no-reply@backpack.example.org>",
            consumer="notifier",
            credentials_topic="credentials",
            reminder_days=30,
            code_secret=lambda: b"s" * 32,
            tuning=self.tuning,
            clock=self.clock,
        )

    def issued(self, *, certificate: bool, origin: Origin = "live", event: str = EVENT) -> bytes:
        return CredentialIssuedMessage.build(
            id=event,
            source="test",
            subject=CREDENTIAL,
            data=CredentialIssued(
                credential_id=CREDENTIAL,
                learner_id=JAN,
                course_id=42,
                achievement=Achievement(
                    id="python-basics", name="Python Basics", description="d", criteria="c"
                ),
                issued_on=ISSUED,
                verification_code="DCPX-JEAW-QFWX",
                verify_url="https://backpack.example.org/verify/DCPX-JEAW-QFWX",
                badge=True,
                certificate=certificate,
                origin=origin,
            ),
        ).to_bytes()

    def revoked(self) -> bytes:
        return CredentialRevokedMessage.build(
            id="revoked-event-1",
            source="test",
            subject=CREDENTIAL,
            data=CredentialRevoked(
                credential_id=CREDENTIAL,
                learner_id=JAN,
                verification_code="DCPX-JEAW-QFWX",
                reason="issued by mistake",
                revoked_at=self.clock(),
            ),
        ).to_bytes()

    def rendered(self) -> bytes:
        return CertificateRenderedMessage.build(
            id="rendered-1",
            source="test",
            subject=CREDENTIAL,
            data=CertificateRendered(
                credential_id=CREDENTIAL,
                bucket="certificates",
                object_key=f"certificates/{CREDENTIAL}/x.pdf",
                sha256="0" * 64,
                size=1,
                template="default",
                rendered_at=self.clock(),
            ),
        ).to_bytes()

    def accept(self, raw: bytes) -> list[Key]:
        return handlers.accept_event(raw, self.uow, self.ctx)

    def deliver(self, key: Key) -> handlers.Outcome:
        return handlers.deliver(key, self.uow, self.ctx)

    def state(self, key: Key) -> str:
        return self.uow.committed.notifications[key].state


@pytest.fixture
def world() -> World:
    return World()


def test_an_issued_event_records_one_notice_per_enabled_channel(world: World) -> None:
    keys = world.accept(world.issued(certificate=False))

    assert sorted(keys) == [(EVENT, "email"), (EVENT, "moodle")]
    assert {k: n.state for k, n in world.uow.committed.notifications.items()} == {
        (EVENT, "email"): PENDING,
        (EVENT, "moodle"): PENDING,
    }
    assert [world.deliver(key).state for key in sorted(keys)] == ["sent", "sent"]
    (mail,) = world.email.sent
    assert mail["Subject"] == "Nowa odznaka: Python Basics" and "Jan Kowalski" in mail["To"]
    assert [user for user, _html, _id in world.moodle.sent] == [JAN]
    # Redelivered: the same event records nothing new and sends nothing again.
    assert world.accept(world.issued(certificate=False)) == []
    assert len(world.email.sent) == 1 and len(world.moodle.sent) == 1


def test_a_channel_the_learner_turned_off_is_skipped(world: World) -> None:
    world.uow.committed.preferences[(JAN, "issued", "email")] = False
    keys = world.accept(world.issued(certificate=False))

    outcomes = {key: world.deliver(key).state for key in keys}

    assert outcomes == {(EVENT, "email"): "skipped", (EVENT, "moodle"): "sent"}
    assert world.email.sent == [] and len(world.moodle.sent) == 1
    skipped = world.uow.committed.notifications[(EVENT, "email")]
    assert "turned off by the learner" in (skipped.last_error or "")


def test_a_credential_awarded_from_the_backfill_lane_is_skipped_and_a_live_one_sent(world: World) -> None:
    history = world.accept(world.issued(certificate=True, origin="backfill", event="backfill-event"))

    outcomes = {key: world.deliver(key).state for key in history}

    assert outcomes == {("backfill-event", "email"): "skipped", ("backfill-event", "moodle"): "skipped"}
    assert world.email.sent == [] and world.moodle.sent == []  # and no wait for the PDF either
    for key in history:
        row = world.uow.committed.notifications[key]
        assert row.state == SKIPPED and "backfill" in (row.last_error or "")
        assert key not in handlers.due(world.uow, world.ctx)
    live = world.accept(world.issued(certificate=False))
    assert {world.deliver(key).state for key in live} == {"sent"}
    assert len(world.email.sent) == 1 and len(world.moodle.sent) == 1
    # A revocation of a backfill's credential is told as any other.
    revoked = world.accept(world.revoked())
    assert {world.deliver(key).state for key in revoked} == {"sent"}
    assert world.email.sent[-1]["Subject"].startswith("Poświadczenie unieważnione")


def test_an_issued_event_without_an_origin_is_live(world: World) -> None:
    """Events written before `origin` existed (a replay of `credentials`) read as live ones."""
    event = json.loads(world.issued(certificate=False))
    del event["data"]["origin"]

    keys = world.accept(json.dumps(event).encode())

    assert {world.deliver(key).state for key in keys} == {"sent"}


def test_the_setting_turns_messages_for_the_backfill_lane_on(world: World) -> None:
    ctx = dataclasses.replace(world.ctx, notify_backfill=True)

    keys = handlers.accept_event(world.issued(certificate=False, origin="backfill"), world.uow, ctx)

    assert {handlers.deliver(key, world.uow, ctx).state for key in keys} == {"sent"}
    (mail,) = world.email.sent
    assert mail["Subject"] == "Nowa odznaka: Python Basics" and len(world.moodle.sent) == 1


def test_a_certificate_message_waits_for_its_pdf_and_goes_when_the_rendered_event_arrives(
    world: World,
) -> None:
    keys = world.accept(world.issued(certificate=True))

    assert {world.deliver(key).state for key in keys} == {"waiting"}
    assert world.email.sent == [] and world.moodle.sent == []
    world.clock.advance(1)  # before the retry timer would look again (pdf_poll)
    assert handlers.due(world.uow, world.ctx) == []

    woken = handlers.record_rendered(world.rendered(), world.uow, world.ctx)

    assert sorted(woken) == sorted(keys)
    assert {world.deliver(key).state for key in woken} == {"sent"}
    (mail,) = world.email.sent
    assert "/verify/DCPX-JEAW-QFWX/certificate.pdf" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_a_pdf_rendered_before_the_event_is_read_lets_the_message_go_at_once(world: World) -> None:
    assert handlers.record_rendered(world.rendered(), world.uow, world.ctx) == []  # nothing waits yet

    keys = world.accept(world.issued(certificate=True))

    assert {world.deliver(key).state for key in keys} == {"sent"}


def test_a_certificate_message_goes_without_its_pdf_after_the_longest_wait(world: World) -> None:
    (key, _moodle) = sorted(world.accept(world.issued(certificate=True)))
    assert world.deliver(key).state == "waiting"

    world.clock.advance(world.tuning.pdf_wait)

    assert handlers.due(world.uow, world.ctx) != []
    assert world.deliver(key).state == "sent"


def test_a_failed_delivery_is_scheduled_again_after_the_schedules_delay(world: World) -> None:
    (key, _moodle) = sorted(world.accept(world.issued(certificate=False)))
    world.email.failure = smtplib.SMTPResponseException(451, b"4.3.0 mailbox busy, try later")

    assert world.deliver(key).state == "failed"

    failed = world.uow.committed.notifications[key]
    delay = RetrySchedule(ATTEMPTS, 60, 600).delay(1)
    assert (failed.state, failed.attempts) == (FAILED, 1)
    assert failed.next_attempt_at == world.clock() + timedelta(seconds=delay)
    assert "SMTPResponseException" in (failed.last_error or "")
    world.clock.advance(delay - 1)
    assert key not in handlers.due(world.uow, world.ctx) and world.deliver(key).state == "busy"
    world.clock.advance(1)
    assert key in handlers.due(world.uow, world.ctx)
    world.email.failure = None
    assert world.deliver(key).state == "sent" and world.state(key) == SENT


def test_after_the_last_attempt_the_notification_is_a_dead_letter(world: World) -> None:
    (key, _moodle) = sorted(world.accept(world.issued(certificate=False)))
    world.email.failure = smtplib.SMTPResponseException(451, b"4.3.0 mailbox busy, try later")
    schedule = world.tuning.schedule

    states = []
    for attempt in range(1, ATTEMPTS + 1):
        outcome = world.deliver(key)
        states.append(outcome.state)
        if attempt < ATTEMPTS:
            world.clock.advance(schedule.delay(attempt))

    assert states == ["failed"] * (ATTEMPTS - 1) + ["gave-up"]
    letter = outcome.dead_letter
    assert isinstance(letter, DeadLetterMessage)
    assert letter.data.consumer == "notifier" and letter.data.topic == "credentials"
    assert letter.data.error_type == "SMTPResponseException"
    assert letter.data.reason.startswith(f"gave up after {ATTEMPTS} attempts: email: ")
    assert world.state(key) == GAVE_UP and key in handlers.due(world.uow, world.ctx)  # until acknowledged

    handlers.mark_dead(key, world.uow, world.ctx)

    assert world.state(key) == DEAD and key not in handlers.due(world.uow, world.ctx)
    assert handlers.requeue(key, world.uow, world.ctx) and world.state(key) == PENDING


def test_the_retry_schedule_doubles_up_to_its_longest_delay_and_outlasts_an_outage(world: World) -> None:
    schedule = world.tuning.schedule
    assert schedule.next_delay(ATTEMPTS, permanent=False, outage=True) == schedule.delay(ATTEMPTS)
    assert schedule.next_delay(ATTEMPTS, permanent=False, outage=False) is None
    assert schedule.next_delay(1, permanent=True, outage=True) is None
    assert [schedule.delay(n) for n in (1, 2, 3, 4, 5)] == [60, 120, 240, 480, 600]
