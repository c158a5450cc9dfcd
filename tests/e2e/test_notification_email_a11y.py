"""The notifier's e-mails and the learner's notification settings, checked in a real browser (Debian's
Chromium driven by Playwright) with axe-core's WCAG 2.1 A/AA rules, in Polish and in English.

E-mails: the HTML part of each kind (issued, revoked, expiry reminder) as the SMTP server receives it,
loaded into the browser: zero violations, and it reflows to 320 CSS pixels (WCAG 1.4.10). The plain-text
part: every link on a line of its own after a text that names it, lines a mail client does not have to
wrap, no markup, nothing left untranslated. Pages: `/preferences` and the unsubscribe confirmation.
"""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright
from pydantic import SecretStr

from ebackpack.adapters.keystore import code_secret_for
from ebackpack.adapters.persistence.engine import make_engine, migrate, session_factory
from ebackpack.config import Settings
from ebackpack.dev.sample_data import default_dataset
from services.backpack.i18n import translate as page_text
from services.gateway.profiles import store_profiles
from services.notifier import domain
from services.notifier.channels import Email, build_email
from services.notifier.domain import (
    Content,
    Notice,
    Recipient,
    Site,
    compose,
    email_bodies,
    message_id,
    unsubscribe_token,
)
from tests.browser.harness import axe_context, axe_violations, describe_violations, launch

pytestmark = pytest.mark.e2e

SITE = Site(
    issuer_name="Stowarzyszenie Edukacji Dorosłych",
    issuer_email="certyfikaty@moodle.example.org",
    public_url="https://backpack.example.org",
    moodle_url="https://moodle.example.org",
)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CODE = "DCPX-JEAW-QFWX"
UNSUBSCRIBE = "https://backpack.example.org/preferences/unsubscribe/eyJsIjo1NzIyfQ.token"
MAIL_FROM = "e-Backpack <no-reply@backpack.example.org>"
REASON = "Wydane omyłkowo: egzamin praktyczny nie został zaliczony."


def notice(kind: str) -> Notice:
    return Notice(
        kind=kind,
        event_id=f"event-{kind}",
        learner_id=5722,
        credential_id="c-1",
        verification_code=CODE,
        at=NOW if kind != "issued" else datetime(2026, 1, 12, tzinfo=UTC),
        achievement="Pierwsza pomoc przedmedyczna",
        course_id=43,
        badge=True,
        certificate=True,
        valid_until=NOW + timedelta(days=21),
        reason=REASON if kind == "revoked" else None,
    )


def content(kind: str, lang: str) -> Content:
    recipient = Recipient(5722, "Zofia", "Wiśniewska-Żółkiewska", "z.wisniewska@example.org", lang)
    return compose(
        notice(kind),
        recipient,
        SITE,
        achievement="Pierwsza pomoc przedmedyczna",
        course="Pierwsza pomoc przedmedyczna dla dorosłych",
        unsubscribe_url=UNSUBSCRIBE,
        now=NOW,
    )


def received(kind: str, lang: str) -> EmailMessage:
    """The e-mail as built for SMTP, parsed back the way a mail client reads it."""
    c = content(kind, lang)
    bodies = email_bodies(c)
    mail = Email(
        to_name="Zofia Wiśniewska-Żółkiewska",
        to_address="z.wisniewska@example.org",
        subject=c.subject,
        text=bodies.text,
        html=bodies.html,
        lang=c.lang,
        message_id=message_id(f"event-{kind}", "email", MAIL_FROM),
        unsubscribe_url=UNSUBSCRIBE,
    )
    wire = build_email(mail, MAIL_FROM, NOW).as_bytes()
    parsed = email.message_from_bytes(wire, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body((subtype,))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


CASES = [(kind, lang) for kind in ("issued", "revoked", "expiry") for lang in ("pl", "en")]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


# ------------------------------------------------------------------------------------------- e-mails


@pytest.mark.parametrize(("kind", "lang"), CASES)
def test_the_html_e_mail_has_no_wcag_violations_and_reflows(chromium: Browser, kind: str, lang: str) -> None:
    message = received(kind, lang)
    html = part(message, "html")
    ctx = axe_context(chromium, viewport={"width": 1024, "height": 800})
    try:
        page = ctx.new_page()
        page.set_content(html)
        expect(page.locator("html")).to_have_attribute("lang", lang)
        assert page.title() == message["Subject"]
        expect(page.get_by_role("heading", level=1)).to_have_text(content(kind, lang).heading)
        violations = axe_violations(page)
        assert violations == [], describe_violations(violations, f"{kind} e-mail ({lang})")
        assert page.locator("table").count() == 0  # no layout tables
        for link in page.get_by_role("link").all():  # each link names where it goes, out of context too
            name = link.inner_text().strip()
            assert len(name.split()) >= 3, name
            assert not re.match(r"(?i)^(here|tutaj|link|więcej|more)\b", name), name
        page.set_viewport_size({"width": 320, "height": 640})
        assert page.evaluate("document.documentElement.scrollWidth") <= 320  # WCAG 1.4.10
    finally:
        ctx.close()


@pytest.mark.parametrize(("kind", "lang"), CASES)
def test_the_plain_text_part_carries_every_link_and_reads_in_order(kind: str, lang: str) -> None:
    message = received(kind, lang)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Content-Language"] == lang
    text = part(message, "plain")
    c = content(kind, lang)
    lines = text.split("\n")
    for link in [*c.links, c.preferences, c.unsubscribe]:
        assert link is not None
        at = lines.index(link.url)  # the URL alone on its line, after the text that names it
        assert lines[at - 1] == f"{link.text}:"
    assert all(len(line) <= 78 for line in lines if not line.startswith("http")), text
    assert not re.search(r"<[a-z/]|\{\{|\{%|None", text), text
    assert lines[0] == c.heading and set(lines[1]) == {"="}
    flat = " ".join(text.split())
    order = [c.heading, c.greeting, c.paragraphs[0], c.links[0].text, c.facts[0][0]]
    positions = [flat.index(" ".join(piece.split())) for piece in order]
    assert positions == sorted(positions), order
    if kind == "revoked":
        assert REASON in flat
    assert "\n-- \n" in text  # the signature separator: clients grey out the footer


def test_every_text_of_the_e_mails_has_a_polish_translation(monkeypatch: pytest.MonkeyPatch) -> None:
    used: set[str] = set()
    original = domain.translate

    def recording(text: str, lang: str, **values: object) -> str:
        used.add(text)
        return original(text, lang, **values)

    monkeypatch.setattr(domain, "translate", recording)
    for kind in ("issued", "revoked", "expiry"):
        for badge, certificate in ((True, True), (True, False), (False, True)):
            n = notice(kind).model_copy(update={"badge": badge, "certificate": certificate})
            recipient = Recipient(1, "A", "B", "a@example.org", "pl")
            compose(n, recipient, SITE, achievement="X", course="Y", unsubscribe_url=UNSUBSCRIBE, now=NOW)
    assert len(used) > 20
    assert sorted(t for t in used if t not in domain.POLISH) == []


# --------------------------------------------------------------------------------- the settings pages


class Server:
    """The backpack web app (with the preferences router) served by uvicorn in a thread."""

    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        from services.backpack.app import create_app
        from services.backpack.preferences import router

        app = create_app(settings)
        if not any(getattr(r, "path", None) == "/preferences" for r in app.routes):
            app.include_router(router)  # until services/backpack/app.py includes it
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.url = settings.public_url

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("web server did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def web(settings: Settings, web_socket: socket.socket) -> Iterator[tuple[Server, Settings]]:
    settings = settings.model_copy(
        update={"dev_login": True, "smtp_host": "127.0.0.1", "moodle_ws_token": SecretStr("token")}
    )
    migrate(settings.db_url)
    store_profiles(session_factory(make_engine(settings.db_url)), default_dataset().profiles)
    with Server(settings, web_socket) as server:
        yield server, settings


def check(page: Page, where: str) -> None:
    violations = axe_violations(page)
    assert violations == [], describe_violations(violations, where)


@pytest.mark.parametrize("lang", ["pl", "en"])
def test_the_notification_settings_and_the_unsubscribe_page_have_no_wcag_violations(
    chromium: Browser, web: tuple[Server, Settings], lang: str
) -> None:
    server, settings = web
    t: Callable[..., str] = lambda text, **values: page_text(text, lang, **values)  # noqa: E731
    ctx = axe_context(chromium, locale={"pl": "pl-PL", "en": "en-GB"}[lang])
    try:
        page = ctx.new_page()
        page.goto(f"{server.url}/login?next=/preferences")
        page.get_by_label(t("Log in as"), exact=True).select_option("5722")
        page.get_by_role("button", name=t("Log in"), exact=True).click()
        page.goto(f"{server.url}/preferences")
        expect(page.get_by_role("heading", level=1)).to_have_text(t("Notifications"))
        expect(page.get_by_role("link", name=t("Notifications"))).to_have_attribute("aria-current", "page")
        check(page, f"/preferences ({lang})")

        group = page.get_by_role("group", name=t("When a badge or certificate is issued to me"))
        box = group.get_by_role("checkbox", name=t("E-mail"))
        expect(box).to_be_checked()
        box.press("Space")  # keyboard only
        page.get_by_role("button", name=t("Save my choices")).click()
        expect(page.get_by_role("status")).to_have_text(t("Your choices were saved."))
        expect(
            page.get_by_role("group", name=t("When a badge or certificate is issued to me")).get_by_role(
                "checkbox", name=t("E-mail")
            )
        ).not_to_be_checked()
        expect(
            page.get_by_role(
                "group", name=t("When one of my credentials is revoked, with the reason")
            ).get_by_role("checkbox", name=t("Moodle message"))
        ).to_be_checked()
        check(page, f"/preferences after saving ({lang})")

        token = unsubscribe_token(code_secret_for(settings), 5722, "expiry")
        page.goto(f"{server.url}/preferences/unsubscribe/{token}")
        expect(page.get_by_role("heading", level=1)).to_have_text(t("Stop e-mails"))
        check(page, f"unsubscribe page ({lang})")
        page.get_by_role("button", name=t("Stop these e-mails")).click()
        what = t("credentials about to expire")
        done = t("Done: you will no longer receive e-mails about {what}.", what=what)
        expect(page.get_by_role("status")).to_have_text(done)
        check(page, f"unsubscribed page ({lang})")
        page.get_by_role("link", name=t("Open your notification settings")).click()
        expect(
            page.get_by_role(
                "group", name=t("Some weeks before one of my credentials expires (recertification reminder)")
            ).get_by_role("checkbox", name=t("E-mail"))
        ).not_to_be_checked()
    finally:
        ctx.close()
