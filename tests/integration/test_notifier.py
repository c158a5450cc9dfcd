"""The notifier on the embedded stack: real credential events (the issuer's service layer, its outbox rows
published to `credentials`), a notifier worker process, a real SMTP server (aiosmtpd) and a stub of
Moodle's web service that records every call.

Exactly once, counted at the receivers: per Message-ID at the SMTP server, per `clientmsgid` at Moodle,
through redelivery, a replay in a new consumer group, kill -9 in the middle of a batch and a 30-second
SMTP outage. The one case that can duplicate (a crash in the instant between the SMTP server's 250 and
the commit of "sent") is not provoked here: the kill lands where a crash realistically lands, while the
worker waits for the server (docs/notifier.md).
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
import re
import secrets
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from kafka import KafkaProducer
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.persistence.tables import AwardRow, NotificationRow, OutboxRow
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.sample_data import default_dataset
from ebackpack.dev.stack import free_port
from ebackpack.dev.workers import Worker
from ebackpack.domain.rules import load_rules
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import CREDENTIALS, RENDERED
from schemas import CertificateRendered, CertificateRenderedMessage, DeadLetterMessage
from schemas.moodle import LearnerProfile, Profiles
from services.gateway.profiles import store_profiles
from services.issuer.service import IssuerService
from services.notifier.agent import DEAD_LETTERS
from services.notifier.service import NotifierService, Tuning
from tests.builders import completion, wait_for
from tests.conftest import isolated, reserve_port
from tests.http_stub import LoopbackServer, QuietHandler, respond

pytestmark = pytest.mark.integration

# Courses of ebackpack/dev/sample/rules.toml: certificate and badge; valid 730 days; badge only.
PYTHON, FIRST_AID, ACCESSIBILITY = 42, 43, 44
JAN, EMILY = 5722, 5725  # sample learners: Polish, English
COMPLETED = datetime(2026, 1, 12, 10, 30, tzinfo=UTC)
REFUSED_BY_MOODLE = 9099  # the stub answers msgid -1 for this user (e.g. they blocked messages)
# The worker runs as in production (EMBEDDED=false), which refuses short tokens: 32 hex digits, like Moodle's.
WS_TOKEN = secrets.token_hex(16)
TUNING = {  # seconds, short for the tests (production defaults: services/notifier/service.py Tuning)
    "EBACKPACK_NOTIFY_MAX_ATTEMPTS": "30",
    "EBACKPACK_NOTIFY_RETRY_FIRST_DELAY": "1",
    "EBACKPACK_NOTIFY_RETRY_MAX_DELAY": "4",
    "EBACKPACK_NOTIFY_RETRY_INTERVAL": "0.5",
    "EBACKPACK_NOTIFY_SCAN_INTERVAL": "1",
    "EBACKPACK_NOTIFY_SEND_TIMEOUT": "2",
    "EBACKPACK_NOTIFY_STALE_SENDING": "5",
    "EBACKPACK_NOTIFY_PDF_WAIT": "120",
    "EBACKPACK_NOTIFY_PDF_POLL": "0.5",
}


# ------------------------------------------------------------------------------------------ receivers


class Inbox:
    """aiosmtpd handler: keeps every accepted message. `hold` delays the answer to RCPT, the moment a
    real sender spends waiting on the server; a client killed meanwhile never transfers the message."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()
        self.hold = 0.0
        self.rcpts = 0
        self.hold_at: int | None = None
        self.holding = threading.Event()
        self.recipients: list[str] = []  # every RCPT TO the server was asked for

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        envelope.rcpt_tos.append(address)
        self.recipients.append(address)
        self.rcpts += 1
        if self.hold:
            if self.hold_at is not None and self.rcpts >= self.hold_at:
                self.holding.set()
            await asyncio.sleep(self.hold)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if address in str(m["To"])]

    def ids(self) -> Counter[str]:
        with self.lock:
            return Counter(str(m["Message-ID"]) for m in self.messages)


class SmtpServer:
    def __init__(self, inbox: Inbox, port: int) -> None:
        self.inbox, self.port = inbox, port
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


class MoodleStub:
    """`/webservice/rest/server.php` of Moodle: records each call's form fields, answers like Moodle."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        stub = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                fields = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
                user = int(fields.get("messages[0][touserid]", "0"))
                if self.path != "/webservice/rest/server.php" or fields.get("wstoken") != WS_TOKEN:
                    answer: Any = {
                        "exception": "moodle_exception",
                        "errorcode": "invalidtoken",
                        "message": "Invalid token",
                    }
                elif user == REFUSED_BY_MOODLE:
                    answer = [
                        {
                            "msgid": -1,
                            "clientmsgid": fields.get("messages[0][clientmsgid]"),
                            "errormessage": "The user has blocked messages from non-contacts",
                        }
                    ]
                else:
                    stub.calls.append(fields)
                    answer = [
                        {"msgid": len(stub.calls), "clientmsgid": fields.get("messages[0][clientmsgid]")}
                    ]
                respond(self, 200, json.dumps(answer).encode())

        self.server = LoopbackServer(Handler).start()
        self.url = self.server.url

    def to(self, user: int) -> list[dict[str, str]]:
        return [c for c in list(self.calls) if c["messages[0][touserid]"] == str(user)]

    def ids(self) -> Counter[str]:
        return Counter(c["messages[0][clientmsgid]"] for c in list(self.calls))

    def close(self) -> None:
        self.server.close()


# ------------------------------------------------------------------------------------------- pipeline


def rendered_event(credential_id: str) -> bytes:
    """The renderer's `certificates.rendered` event for a stored PDF of this credential."""
    return CertificateRenderedMessage.build(
        id=f"rendered-{credential_id}",
        source="ebackpack/renderer",
        subject=credential_id,
        data=CertificateRendered(
            credential_id=credential_id,
            bucket="b",
            object_key=f"certificates/{credential_id}/x.pdf",
            sha256="0" * 64,
            size=1,
            template="default",
            rendered_at=datetime.now(UTC),
        ),
    ).to_bytes()


@dataclass
class Pipeline:
    settings: Settings
    sessions: sessionmaker[Session]
    issuer: IssuerService
    inbox: Inbox
    smtp: SmtpServer
    moodle: MoodleStub
    worker: Worker
    producer: KafkaProducer
    codes: dict[tuple[int, int], str] = field(default_factory=dict)

    def award(self, learner: int, course: int, *, rendered: bool = True) -> list[OutboxRow]:
        """A completion through the issuer's service layer; its `credentials` events (not yet published)."""
        rows = self.issuer.handle(completion(learner, course, COMPLETED))
        events = [r for r in rows if r.topic == self.settings.topic(CREDENTIALS)]
        for row in events:
            with self.sessions() as s:
                award = s.get(AwardRow, row.credential_id)
                assert award is not None
                self.codes[(learner, course)] = award.verification_code
        if rendered:
            self.render([r.credential_id for r in events])
        return events

    def render(self, credential_ids: list[str]) -> None:
        """What the renderer announces once a certificate's PDF is stored (the notifier waits for it)."""
        for cid in credential_ids:
            self.producer.send(self.settings.topic(RENDERED), key=cid.encode(), value=rendered_event(cid))
        self.producer.flush()

    def revocation(self, learner: int, course: int, reason: str) -> OutboxRow:
        award = self.issuer.revoke(self.codes[(learner, course)], reason)
        with self.sessions() as s:
            return s.scalars(
                select(OutboxRow).where(
                    OutboxRow.credential_id == award.credential_id, OutboxRow.payload.contains("revoked.v1")
                )
            ).one()

    def publish(self, rows: list[OutboxRow]) -> None:
        for row in rows:
            key = row.key.encode() if row.key else None
            self.producer.send(row.topic, key=key, value=row.payload.encode())
        self.producer.flush()

    def restart(self, settings: Settings | None = None, *, kill: bool = False) -> None:
        if kill:
            self.worker.kill()
        else:
            self.worker.stop()
        self.worker = Worker("notifier", settings or self.worker.settings)
        self.worker.start()

    def wait(self, check: Callable[[], Any], what: str, seconds: float = 40) -> Any:
        return wait_for(check, seconds, what, [self.worker])

    def rows(self, learner: int) -> list[NotificationRow]:
        with self.sessions() as s:
            return list(s.scalars(select(NotificationRow).where(NotificationRow.learner_id == learner)))

    def url(self, path: str) -> str:
        return f"{self.settings.public_url}{path}"


def learners(first: int, count: int) -> list[int]:
    return list(range(first, first + count))


def extra_profiles(ids: list[int]) -> Profiles:
    return Profiles(
        users=[
            LearnerProfile(
                id=i,
                firstname=f"Learner{i}",
                lastname="Test",
                email=f"learner{i}@example.org",
                lang="pl" if i % 2 else "en",
            )
            for i in ids
        ],
        courses=[],
    )


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, stack_settings: Settings) -> Iterator[Pipeline]:
    inbox, moodle = Inbox(), MoodleStub()
    smtp = SmtpServer(inbox, free_port())
    smtp.start()
    web = reserve_port()
    settings = isolated(stack_settings, tmp_path_factory.mktemp("notifier"), web).model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "moodle_url": moodle.url,
            "moodle_ws_token": SecretStr(WS_TOKEN),
            "notify_moodle_messages": True,
            "mail_from": "e-Backpack <no-reply@backpack.example.org>",
            "dev_login": True,
        }
    )
    sessions = prepare(settings)
    data = default_dataset().profiles
    store_profiles(sessions, Profiles(users=data.users, courses=data.courses))
    store_profiles(sessions, extra_profiles([*learners(9001, 40), REFUSED_BY_MOODLE]))
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap.split(","), acks="all")
    with pytest.MonkeyPatch.context() as env:
        for name, value in TUNING.items():
            env.setenv(name, value)
        worker = Worker("notifier", settings)
        worker.start()
        issuer = IssuerService(sessions, load_rules(settings.rules_file), settings)
        pipe = Pipeline(settings, sessions, issuer, inbox, smtp, moodle, worker, producer)
        try:
            yield pipe
        finally:
            pipe.worker.stop()
            producer.close()
            smtp.stop()
            moodle.close()
            web.close()


def plain(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def html(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def assert_each_once(pipe: Pipeline) -> None:
    assert [i for i, n in pipe.inbox.ids().items() if n > 1] == []
    assert [i for i, n in pipe.moodle.ids().items() if n > 1] == []


# -------------------------------------------------------------------------------------------- tests


def test_an_award_is_announced_once_in_the_learners_language_through_redelivery_and_replay(
    pipeline: Pipeline,
) -> None:
    pipe = pipeline
    issued = pipe.award(JAN, PYTHON, rendered=False) + pipe.award(EMILY, PYTHON, rendered=False)
    pipe.publish(issued)

    # The messages link to the certificate's PDF: they wait until the renderer has stored it.
    def waiting(row: NotificationRow) -> bool:  # looked at, and put back for later
        return row.state == "pending" and row.next_attempt_at is not None and row.updated_at > row.created_at

    pipe.wait(
        lambda: len([r for r in pipe.rows(JAN) + pipe.rows(EMILY) if waiting(r)]) == 4,
        "four messages waiting for their PDFs",
    )
    assert pipe.inbox.messages == [] and pipe.moodle.calls == []
    pipe.render([r.credential_id for r in issued])
    pipe.wait(
        lambda: len(pipe.inbox.messages) == 2 and len(pipe.moodle.calls) == 2,
        "two e-mails, two Moodle messages",
    )

    code = pipe.codes[(JAN, PYTHON)]
    (jan,) = pipe.inbox.to("jan.kowalski@example.org")
    assert jan["Subject"] == "Nowa odznaka i zaświadczenie: Python Basics"
    assert jan["Content-Language"] == "pl" and jan["Auto-Submitted"] == "auto-generated"
    assert jan["From"] == pipe.settings.mail_from and "Jan Kowalski" in jan["To"]
    assert jan["List-Unsubscribe"].startswith(f"<{pipe.url('/preferences/unsubscribe/')}")
    assert jan["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"<[0-9a-f-]{36}@backpack\.example\.org>", jan["Message-ID"])
    assert jan.get_content_type() == "multipart/alternative"
    text = plain(jan)
    links = (f"/certificates/{code}", f"/badges/{code}", f"/verify/{code}/certificate.pdf", f"/verify/{code}")
    for link in links:
        assert f"\n{pipe.url(link)}\n" in text  # each link on a line of its own
    words = " ".join(text.split())  # paragraphs are wrapped at 72 characters
    assert "Gratulujemy" in words and "kursu „Python Basics for Adult Learners”" in words
    assert "Data wydania: 12 stycznia 2026" in text
    assert '<html lang="pl"' in html(jan)
    assert "<title>Nowa odznaka i zaświadczenie: Python Basics</title>" in html(jan)

    (emily,) = pipe.inbox.to("emily.carter@example.org")
    assert emily["Subject"] == "Your new badge and certificate: Python Basics"
    assert emily["Content-Language"] == "en"
    assert "Congratulations" in plain(emily) and '<html lang="en"' in html(emily)

    (to_jan,) = pipe.moodle.to(JAN)
    assert to_jan["wsfunction"] == "core_message_send_instant_messages"
    assert to_jan["messages[0][textformat]"] == "1" and to_jan["moodlewsrestformat"] == "json"
    assert "Gratulujemy" in to_jan["messages[0][text]"]
    assert f'href="{pipe.url(f"/verify/{code}/certificate.pdf")}"' in to_jan["messages[0][text]"]
    assert "Congratulations" in pipe.moodle.to(EMILY)[0]["messages[0][text]"]

    # Redelivery: the same events again, then a revocation behind them on Jan's partition (same key).
    pipe.publish([*issued, pipe.revocation(JAN, PYTHON, "Wydane omyłkowo: kurs nie został ukończony.")])
    pipe.wait(lambda: len(pipe.inbox.to("jan.kowalski@example.org")) == 2, "the revocation e-mail")
    revoked = pipe.inbox.to("jan.kowalski@example.org")[1]
    assert revoked["Subject"] == "Poświadczenie unieważnione: Python Basics"
    assert "Powód: Wydane omyłkowo: kurs nie został ukończony." in " ".join(plain(revoked).split())
    assert "Wydane omyłkowo" in html(revoked) and f"\n{pipe.url(f'/verify/{code}')}\n" in plain(revoked)
    pipe.wait(lambda: len(pipe.moodle.to(JAN)) == 2, "the revocation Moodle message")
    assert "Wydane omyłkowo" in pipe.moodle.to(JAN)[1]["messages[0][text]"]
    # Emily's redelivered event came before the revocation of the same batch: nothing new for her.
    time.sleep(1.0)
    assert len(pipe.inbox.to("emily.carter@example.org")) == 1 and len(pipe.moodle.to(EMILY)) == 1

    # Replay: a new consumer group reads `credentials` from offset 0; then a new award behind it.
    pipe.restart(pipe.settings.model_copy(update={"notify_group": "notifier-replay"}))
    pipe.publish(pipe.award(EMILY, ACCESSIBILITY))
    pipe.wait(
        lambda: len(pipe.inbox.to("emily.carter@example.org")) == 2,
        "the badge e-mail after the replay",
        seconds=60,
    )
    assert (
        pipe.inbox.to("emily.carter@example.org")[1]["Subject"]
        == "Your new badge: Digital Accessibility (WCAG 2.1)"
    )
    pipe.wait(lambda: len(pipe.moodle.calls) == 4, "the badge's Moodle message")
    assert len(pipe.inbox.messages) == 4
    assert_each_once(pipe)


def test_kill_9_in_the_middle_of_a_batch_sends_each_message_exactly_once(pipeline: Pipeline) -> None:
    pipe = pipeline
    batch = learners(9001, 30)
    events = [row for learner in batch for row in pipe.award(learner, ACCESSIBILITY)]
    before_mail, before_moodle = len(pipe.inbox.messages), len(pipe.moodle.calls)
    pipe.inbox.hold, pipe.inbox.hold_at = 0.3, pipe.inbox.rcpts + 12
    pipe.inbox.holding.clear()
    pipe.publish(events)
    assert pipe.inbox.holding.wait(60), "the notifier never reached the 12th e-mail"
    pipe.worker.kill()  # while it waits for the SMTP server's answer: the message is not accepted
    at_kill = len(pipe.inbox.messages) - before_mail
    pipe.inbox.hold = 0.0
    assert 0 < at_kill < 30
    with pipe.sessions() as s:
        in_flight = s.scalars(select(NotificationRow).where(NotificationRow.state == "sending")).all()
    assert len(in_flight) == 1 and in_flight[0].channel == "email"  # recorded BEFORE it was sent

    pipe.restart()
    addresses = [f"learner{i}@example.org" for i in batch]
    pipe.wait(
        lambda: all(pipe.inbox.to(a) for a in addresses) and len(pipe.moodle.calls) - before_moodle >= 30,
        "30 e-mails and 30 Moodle messages after the restart",
        seconds=60,
    )
    pipe.wait(
        lambda: all(r.state == "sent" for learner in batch for r in pipe.rows(learner)), "every row sent"
    )
    assert len(pipe.inbox.messages) - before_mail == 30
    assert len(pipe.moodle.calls) - before_moodle == 30
    assert_each_once(pipe)


def test_an_smtp_outage_delays_the_e_mails_but_loses_none(pipeline: Pipeline) -> None:
    pipe = pipeline
    batch = learners(9031, 4)
    events = [row for learner in batch for row in pipe.award(learner, ACCESSIBILITY)]
    down_at = time.monotonic()
    pipe.smtp.stop()
    before_moodle = len(pipe.moodle.calls)
    try:
        pipe.publish(events)
        pipe.wait(lambda: len(pipe.moodle.calls) - before_moodle == 4, "Moodle messages: another channel")
        pipe.wait(
            lambda: all(
                r.state == "failed" and r.attempts >= 2
                for learner in batch
                for r in pipe.rows(learner)
                if r.channel == "email"
            ),
            "e-mails failing, retried",
        )
        time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
        assert not any(pipe.inbox.to(f"learner{i}@example.org") for i in batch)
        errors = {r.last_error for learner in batch for r in pipe.rows(learner) if r.channel == "email"}
        assert all("ConnectionRefusedError" in (e or "") for e in errors), errors
    finally:
        pipe.smtp.start()
    pipe.wait(lambda: all(pipe.inbox.to(f"learner{i}@example.org") for i in batch), "the delayed e-mails")
    rows = [r for learner in batch for r in pipe.rows(learner) if r.channel == "email"]
    pipe.wait(lambda: all(r.state == "sent" for learner in batch for r in pipe.rows(learner)), "rows sent")
    # Exponential backoff (1, 2, 4, 4, ... s): a handful of attempts in 30 s, not a tight loop.
    assert all(3 <= r.attempts <= 14 for r in rows), [r.attempts for r in rows]
    assert_each_once(pipe)


def test_an_expiry_reminder_goes_out_once_per_credential(pipeline: Pipeline) -> None:
    pipe = pipeline
    learner = 9035  # odd: Polish
    pipe.publish(pipe.award(learner, FIRST_AID))
    address = f"learner{learner}@example.org"
    pipe.wait(lambda: len(pipe.inbox.to(address)) == 1, "the issued e-mail")
    soon = datetime.now(UTC) + timedelta(days=10)
    with pipe.sessions.begin() as s:
        s.execute(update(AwardRow).where(AwardRow.learner_id == learner).values(valid_until=soon))
    pipe.wait(lambda: len(pipe.inbox.to(address)) == 2, "the reminder from the expiry scan")
    reminder = pipe.inbox.to(address)[1]
    date = f"{soon.day} "
    assert reminder["Subject"].startswith(f"Poświadczenie wygasa {date}")
    assert reminder["Subject"].endswith(": Pierwsza pomoc przedmedyczna")
    text = plain(reminder)
    assert "Czas na recertyfikację" in text and "jeszcze 10 dni" in " ".join(text.split())
    assert f"\n{pipe.moodle.url}/course/view.php?id={FIRST_AID}\n" in text
    time.sleep(3)  # three more scans
    assert len(pipe.inbox.to(address)) == 2
    assert len([c for c in pipe.moodle.to(learner) if "recertyfikac" in c["messages[0][text]"]]) == 1


def test_the_reminder_lead_time_is_per_rule(pipeline: Pipeline) -> None:
    """40 days before expiry: not due with the default lead (30 days, so the worker leaves it alone),
    due with a rule's `reminder_days = 45`."""
    pipe = pipeline
    learner = 9037
    (event,) = pipe.award(learner, FIRST_AID)
    with pipe.sessions.begin() as s:
        s.execute(
            update(AwardRow)
            .where(AwardRow.credential_id == event.credential_id)
            .values(valid_until=datetime.now(UTC) + timedelta(days=40))
        )
    rules = load_rules(pipe.settings.rules_file)

    def lead(days: int | None) -> list[int]:
        book = rules.model_copy(
            update={"rules": [r.model_copy(update={"reminder_days": days}) for r in rules.rules]}
        )
        service = NotifierService(pipe.sessions, book, pipe.settings, Tuning())
        return [n.learner_id for n in service.expiring()]

    assert learner not in lead(None) and learner not in lead(35)
    assert learner in lead(45)


def test_a_permanent_refusal_becomes_a_dead_letter_with_the_reason(pipeline: Pipeline) -> None:
    pipe = pipeline
    pipe.publish(pipe.award(REFUSED_BY_MOODLE, ACCESSIBILITY))
    pipe.wait(lambda: pipe.inbox.to(f"learner{REFUSED_BY_MOODLE}@example.org"), "the e-mail (other channel)")
    pipe.wait(
        lambda: [r for r in pipe.rows(REFUSED_BY_MOODLE) if r.channel == "moodle" and r.state == "dead"],
        "the Moodle message given up",
    )
    letters = [
        DeadLetterMessage.model_validate_json(r.value)
        for r in read_topics(pipe.settings, [pipe.settings.topic(DEAD_LETTERS)])
    ]
    (letter,) = [x for x in letters if x.subject and x.subject.endswith("/moodle")]
    assert "blocked messages from non-contacts" in letter.data.reason
    assert letter.data.error_type == "PermanentFailure"
    assert letter.data.consumer == pipe.worker.settings.notify_group  # the group that gave up
    assert json.loads(base64.b64decode(letter.data.value_b64))["learner_id"] == REFUSED_BY_MOODLE


def test_a_learner_who_turned_off_issued_e_mails_gets_none(pipeline: Pipeline) -> None:
    from services.backpack.app import create_app
    from services.backpack.preferences import router

    pipe = pipeline
    learner, address = 9036, "learner9036@example.org"
    pipe.publish(pipe.award(learner, ACCESSIBILITY))
    pipe.wait(lambda: len(pipe.inbox.to(address)) == 1, "the first issued e-mail")
    first = pipe.inbox.to(address)[0]

    # The mail client's one-click unsubscribe (RFC 8058): a POST to the List-Unsubscribe URL.
    app = create_app(pipe.settings)
    if not any(getattr(r, "path", None) == "/preferences" for r in app.routes):
        app.include_router(router)  # until services/backpack/app.py includes it
    target = urllib.parse.urlsplit(first["List-Unsubscribe"].strip("<>")).path
    with TestClient(app) as client:
        assert client.get(target).status_code == 200  # a GET (a link scanner) changes nothing
        answer = client.post(target, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200

    (second,) = pipe.award(learner, PYTHON)  # another credential issued, with a PDF
    pipe.publish([second])
    pipe.wait(lambda: len(pipe.moodle.to(learner)) == 2, "the Moodle message (still on)")
    (row,) = [r for r in pipe.rows(learner) if r.event_id == second.event_id and r.channel == "email"]
    assert row.state == "skipped" and "turned off by the learner" in (row.last_error or "")
    assert len(pipe.inbox.to(address)) == 1
    assert_each_once(pipe)


def test_credentials_awarded_from_the_backfill_lane_are_recorded_as_skipped(pipeline: Pipeline) -> None:
    """A backfill's credential (history, `origin: backfill`) sends no "new credential" message by
    default (EBACKPACK_NOTIFY_BACKFILL); the learner's live award behind it, on the same partition, does."""
    pipe = pipeline
    learner, address = 9038, "learner9038@example.org"
    history = pipe.issuer.handle_batch([completion(learner, ACCESSIBILITY, COMPLETED)], origin="backfill")
    backfilled = [r for r in history.events if r.topic == pipe.settings.topic(CREDENTIALS)]
    pipe.publish(backfilled + pipe.award(learner, PYTHON))

    pipe.wait(lambda: len(pipe.inbox.to(address)) == 1, "the live award's e-mail")
    pipe.wait(lambda: len(pipe.moodle.to(learner)) == 1, "the live award's Moodle message")
    skipped = [r for r in pipe.rows(learner) if r.event_id == backfilled[0].event_id]
    assert {(r.channel, r.state) for r in skipped} == {("email", "skipped"), ("moodle", "skipped")}
    assert all("backfill" in (r.last_error or "") for r in skipped)
    assert pipe.inbox.to(address)[0]["Subject"].startswith("Your new badge and certificate")
    assert_each_once(pipe)


def test_an_address_with_a_line_break_is_a_dead_letter_at_once_and_injects_nothing(
    pipeline: Pipeline,
) -> None:
    """Moodle sent an e-mail address with CRLF (and a header after it): invalid input, never retried.
    A name with CRLF is only text: the e-mail goes out with the name on one line, and no extra header."""
    pipe = pipeline
    attacker = "attacker@evil.example"
    bad, named = 9050, 9051
    store_profiles(
        pipe.sessions,
        Profiles(
            users=[
                LearnerProfile(
                    id=bad,
                    firstname="Ewa",
                    lastname="Nowak",
                    lang="pl",
                    email=f"learner{bad}@example.org\r\nBcc: {attacker}",
                ),
                LearnerProfile(
                    id=named,
                    firstname=f"Eve\r\nBcc: {attacker}\r\n",
                    lastname="Test",
                    lang="en",
                    email=f"learner{named}@example.org",
                ),
            ],
            courses=[],
        ),
    )
    published = time.monotonic()
    pipe.publish(pipe.award(bad, ACCESSIBILITY) + pipe.award(named, ACCESSIBILITY))

    (row,) = pipe.wait(
        lambda: [r for r in pipe.rows(bad) if r.channel == "email" and r.state == "dead"],
        "the e-mail given up",
        seconds=30,
    )
    seconds = time.monotonic() - published
    assert row.attempts == 0, "no send was attempted"
    letters = [
        DeadLetterMessage.model_validate_json(r.value)
        for r in read_topics(pipe.settings, [pipe.settings.topic(DEAD_LETTERS)])
    ]
    (letter,) = [x for x in letters if x.subject == f"notification/{row.event_id}/email"]
    assert letter.data.error_type == "InvalidRecipient"
    assert "line break (CR or LF)" in letter.data.reason and attacker not in letter.data.reason
    assert json.loads(base64.b64decode(letter.data.value_b64))["learner_id"] == bad
    print(f"dead letter {seconds:.1f} s after the event was published")

    address = f"learner{named}@example.org"
    pipe.wait(lambda: pipe.inbox.to(address), "the e-mail to the learner with CRLF in the name")
    (sent,) = pipe.inbox.to(address)
    assert str(sent["To"]) == f'"Eve Bcc: {attacker} Test" <{address}>'
    assert sent["Bcc"] is None
    pipe.wait(lambda: len(pipe.moodle.to(bad)) == 1, "the Moodle message of the learner with the bad address")
    assert attacker not in pipe.inbox.recipients  # the envelope: no one but the learners got anything
    assert_each_once(pipe)
