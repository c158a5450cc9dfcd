"""The links of a notification e-mail lead somewhere: the notifier's service composes and sends a real
e-mail (SMTP to aiosmtpd) for an award made by the issuer's service layer; its `List-Unsubscribe` URL
(a GET shows a confirmation, the RFC 8058 one-click POST turns those e-mails off) and its "choose which
messages you receive" link are followed over HTTP against the running backpack."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.preferences import PreferenceStore
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.sample_data import default_dataset
from ebackpack.dev.stack import free_port
from ebackpack.domain.rules import load_rules
from ebackpack.streaming.topics import CREDENTIALS
from services.gateway.profiles import store_profiles
from services.issuer.service import IssuerService
from services.notifier.service import NotifierService
from tests.builders import completion
from tests.conftest import WebServer, isolated, reserve_port
from tests.integration.test_notifier import Inbox, SmtpServer, rendered_event

pytestmark = pytest.mark.e2e

JAN = 5722  # a sample learner, Polish
PYTHON, FIRST_AID = 42, 43  # courses with a badge and a certificate
ADDRESS = "jan.kowalski@example.org"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Mailing:
    settings: Settings
    sessions: sessionmaker[Session]
    issuer: IssuerService
    notifier: NotifierService
    inbox: Inbox

    def issue(self, course: int) -> list[str]:
        """An award, its PDF recorded as stored, its notifications delivered: the outcomes."""
        rows = self.issuer.handle(completion(JAN, course, datetime(2026, 1, 12, tzinfo=UTC)))
        events = [r for r in rows if r.topic == self.settings.topic(CREDENTIALS)]
        for row in events:  # the renderer's announcement once the PDF is stored
            self.notifier.rendered(rendered_event(row.credential_id))
        keys = [key for row in events for key in self.notifier.accept(row.payload.encode())]
        return [self.notifier.deliver(key).state for key in keys]


@pytest.fixture
def mailing(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mailing]:
    inbox = Inbox()
    smtp = SmtpServer(inbox, free_port())
    smtp.start()
    web = reserve_port()
    settings = isolated(stack_settings, tmp_path_factory.mktemp("mailing"), web).model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "dev_login": True}
    )
    sessions = prepare(settings)
    store_profiles(sessions, default_dataset().profiles)
    rules = load_rules(settings.rules_file)
    try:
        with WebServer(settings, web):
            yield Mailing(
                settings,
                sessions,
                IssuerService(sessions, rules, settings),
                NotifierService(sessions, rules, settings),
                inbox,
            )
    finally:
        smtp.stop()
        web.close()


def plain(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def test_the_links_of_a_notification_e_mail_work(mailing: Mailing) -> None:
    assert mailing.issue(PYTHON) == ["sent"]
    (mail,) = mailing.inbox.to(ADDRESS)
    unsubscribe = mail["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith(f"{mailing.settings.public_url}/preferences/unsubscribe/")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    preferences = f"{mailing.settings.public_url}/preferences"
    assert f"\n{preferences}\n" in plain(mail).replace("\r\n", "\n")

    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        # "Choose which messages you receive": the login first, then the form.
        answer = browser.get(preferences)
        assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/preferences"
        login = browser.get(f"{mailing.settings.public_url}/login")
        token = CSRF_FIELD.search(login.text)
        assert token
        fields = {"csrf_token": token.group(1), "account": str(JAN), "next": "/preferences"}
        signed = browser.post(f"{mailing.settings.public_url}/login/dev", data=fields)
        assert signed.status_code == 303
        form = browser.get(preferences)
        assert form.status_code == 200 and 'name="notify"' in form.text

    with httpx.Client(follow_redirects=False, timeout=30) as scanner:
        # A link scanner's GET of the unsubscribe URL changes nothing: it shows a confirmation.
        shown = scanner.get(unsubscribe)
        assert shown.status_code == 200 and "<form" in shown.text
        with mailing.sessions() as s:
            assert PreferenceStore(s).enabled(JAN, "issued", "email")
        # The mail client's RFC 8058 one-click POST turns the issued e-mails off, without a login.
        clicked = scanner.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
        assert clicked.status_code == 200 and clicked.text == "unsubscribed\n"
    with mailing.sessions() as s:
        assert not PreferenceStore(s).enabled(JAN, "issued", "email")

    # The next credential is issued, and no e-mail is sent for it.
    assert mailing.issue(FIRST_AID) == ["skipped"]
    assert len(mailing.inbox.to(ADDRESS)) == 1
