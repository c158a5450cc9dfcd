"""The backpack in a real browser (Debian's Chromium driven by Playwright), on credentials the whole
pipeline issued: real broker, S3 server, issuer, renderer and importer workers, web server.

What a learner, an administrator and a stranger holding a link see and can do; keyboard-only use;
axe-core's WCAG 2.1 A/AA rules on every page in Polish and English; screenshots for the docs.
Texts are looked up in the app's own translation table (services/backpack/i18n.py), so each check
reads like what the person sees, in the language they chose.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from sqlalchemy import select

from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow
from ebackpack.adapters.storage import ObjectStore
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.sample_data import default_dataset
from ebackpack.dev.workers import Worker
from ebackpack.domain.rules import load_rules
from services.backpack.i18n import format_date, translate
from services.backpack.shares import Shares
from services.backpack.uploads import Announcer, AttestationUploads
from services.gateway.profiles import store_profiles
from services.gateway.publisher import MoodleEventPublisher
from tests.browser.harness import axe_context, axe_violations, describe_violations, launch
from tests.builders import completion, wait_for
from tests.conftest import WebServer, isolated, reserve_port
from tests.verifiers.wallet_client import receive

pytestmark = pytest.mark.e2e

LEARNER, LEARNER_NAME = 5722, "Jan Kowalski"
CERTIFICATE_AND_BADGE, BADGE_ONLY, TO_REVOKE = 42, 44, 43  # courses of ebackpack/dev/sample/rules.toml
COMPLETED = datetime(2026, 1, 12, 10, 30, tzinfo=UTC)  # fixed: the screenshots do not change every run
SHARED = Path(__file__).resolve().parents[3] / "shared"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LOCALES = {"pl": "pl-PL", "en": "en-GB"}
WAIT_MS = 15_000


def t(text: str, lang: str = "pl", **values: object) -> str:
    """The text as the page shows it in this language."""
    return translate(text, lang, **values)


def either(text: str, **values: object) -> re.Pattern[str]:
    """The whole text, in Polish or in English."""
    return re.compile("^(" + "|".join(re.escape(t(text, lang, **values)) for lang in ("pl", "en")) + ")$")


def starts_with(prefix: str) -> re.Pattern[str]:
    # Playwright hands the pattern's source to its selector engine between slashes: escape them too.
    return re.compile("^" + re.escape(prefix).replace("/", r"\/"))


# ------------------------------------------------------------------------------------------- fixtures


@dataclass
class Pipeline:
    settings: Settings
    url: str
    codes: dict[int, str]  # course id -> verification code of the learner's award
    attestation_id: str  # imported before the tests: simple.json of the 1EdTech examples
    share_url: str  # an active public link to the course-42 credential
    workers: dict[str, Worker] = field(default_factory=dict)

    @property
    def certificate(self) -> str:
        return self.codes[CERTIFICATE_AND_BADGE]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, stack_settings: Settings) -> Iterator[Pipeline]:
    web = reserve_port()
    settings = isolated(stack_settings, tmp_path_factory.mktemp("browser"), web).model_copy(
        update={"dev_login": True, "verify_rate_limit": "1000/minute"}
    )
    sessions = prepare(settings)
    store_profiles(sessions, default_dataset().profiles)
    workers = {name: Worker(name, settings) for name in ("issuer", "renderer", "importer")}
    for worker in workers.values():
        worker.start()
    try:
        publisher = MoodleEventPublisher(settings)
        publisher.publish(
            [
                (str(LEARNER).encode(), completion(LEARNER, course, COMPLETED))
                for course in (CERTIFICATE_AND_BADGE, BADGE_ONLY, TO_REVOKE)
            ]
        )
        publisher.close()

        def issued_and_rendered() -> dict[int, str] | None:
            with sessions() as s:
                awards = s.scalars(select(AwardRow).where(AwardRow.learner_id == LEARNER)).all()
                pdfs = set(s.scalars(select(CertificateRow.credential_id)))
            if len(awards) < 3 or not {a.credential_id for a in awards if a.course_id != BADGE_ONLY} <= pdfs:
                return None
            return {a.course_id: a.verification_code for a in awards}

        codes = wait_for(
            issued_and_rendered, 120, "three awards and two certificate PDFs", list(workers.values())
        )

        announcer = Announcer(settings)
        uploads = AttestationUploads(sessions, ObjectStore(settings), settings, announcer)
        example = (SHARED / "fixtures" / "external" / "ob3-1edtech" / "simple.json").read_bytes()
        try:
            attestation = uploads.receive_file(LEARNER, example, "simple.json").row["id"]
        finally:
            announcer.close()
        wait_for(
            lambda: uploads.get(LEARNER, attestation)["state"] != "received",
            60,
            "the importer's verdict on simple.json",
            list(workers.values()),
        )

        with sessions.begin() as s:
            award = s.scalars(
                select(AwardRow).where(AwardRow.verification_code == codes[CERTIFICATE_AND_BADGE])
            ).one()
            token = Shares(s).create(LEARNER, award.credential_id, 30).token

        with WebServer(settings, web) as server:
            yield Pipeline(settings, server.url, codes, attestation, f"{server.url}/s/{token}", workers)
    finally:
        for worker in workers.values():
            worker.stop()
        web.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    """A visitor whose browser asks for Polish, with the app's Content-Security-Policy enforced."""
    ctx = chromium.new_context(
        locale=LOCALES["pl"], accept_downloads=True, viewport={"width": 1280, "height": 900}
    )
    ctx.set_default_timeout(WAIT_MS)
    yield ctx
    ctx.close()


def console_errors(page: Page) -> list[str]:
    """Console errors and uncaught exceptions (a CSP violation shows up here), favicon misses aside."""
    errors: list[str] = []
    page.on(
        "console",
        lambda m: (
            errors.append(f"{m.text} ({m.location.get('url')})")
            if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico")
            else None
        ),
    )
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def log_in(page: Page, base: str, account: str | int, lang: str = "pl") -> None:
    """The development login form: pick the account, then Tab to the button and press Enter."""
    page.goto(f"{base}/login")
    chooser = page.get_by_label(t("Log in as", lang), exact=True)
    chooser.select_option(str(account))
    chooser.press("Tab")
    button = page.get_by_role("button", name=t("Log in", lang), exact=True)
    expect(button).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/(certificates|admin)$"))


def switch_language(page: Page, lang: str) -> None:
    """The language form in the page header: choose, then submit; the same page comes back."""
    before = page.url
    page.get_by_label(either("Language")).select_option(lang)
    with page.expect_navigation():
        page.get_by_role("button", name=either("Change language")).click()
    expect(page.locator("html")).to_have_attribute("lang", lang)
    assert page.url.split("#")[0] == before.split("#")[0]


# ---------------------------------------------------------------------------------------------- tests


def test_a_learner_sees_downloads_and_prints_the_certificate(
    pipeline: Pipeline, context: BrowserContext
) -> None:
    page = context.new_page()
    errors = console_errors(page)
    log_in(page, pipeline.url, LEARNER)

    expect(page.get_by_role("heading", level=1)).to_have_text(t("Certificates"))
    expect(page.get_by_role("button", name=t("Log out"))).to_be_visible()
    expect(page.get_by_text(t("Signed in as {name}", name=LEARNER_NAME))).to_be_visible()
    table = page.get_by_role("table", name=t("Certificates"))
    expect(table.get_by_role("rowheader", name="Python Basics for Adult Learners")).to_be_visible()
    expect(table).not_to_contain_text("Digital Accessibility")  # badge only: no certificate

    page.get_by_role("navigation").get_by_role("link", name=t("Digital badges")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(t("Digital badges"))
    for name in ("Python Basics", "Digital Accessibility (WCAG 2.1)"):
        expect(
            page.get_by_role("heading", level=2).get_by_role("link", name=name, exact=True)
        ).to_be_visible()

    page.get_by_role("navigation").get_by_role("link", name=t("Certificates")).click()
    page.get_by_role("link", name=f"{t('Certificate')}: Python Basics").click()
    expect(page).to_have_url(f"{pipeline.url}/certificates/{pipeline.certificate}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{t('Certificate')}: Python Basics")
    expect(page.get_by_text(t("valid"), exact=True)).to_be_visible()
    qr = page.get_by_role("img", name=t("QR code linking to the verification page"))
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0"), "the QR code image did not load"
    verify_url = f"{pipeline.url}/verify/{pipeline.certificate}"
    expect(page.get_by_role("link", name=verify_url)).to_have_attribute("href", verify_url)
    rule = next(
        r for r in load_rules(pipeline.settings.rules_file).rules if r.course_id == CERTIFICATE_AND_BADGE
    )
    outcomes = page.get_by_role("list").filter(has_text=rule.microcredential.learning_outcomes[0])
    expect(outcomes).to_have_attribute("lang", "en")  # English sentences on a Polish page (WCAG 3.1.2)

    with page.expect_download() as download_info:
        page.get_by_role("link", name=t("Download the PDF")).click()
    download = download_info.value
    assert download.suggested_filename == f"certificate-{pipeline.certificate}.pdf"
    assert Path(download.path()).read_bytes()[:5] == b"%PDF-"

    print_button = page.get_by_role("button", name=t("Print"))
    expect(print_button).to_be_visible()  # shown by print.js: the script ran under the CSP
    page.emulate_media(media="print")
    expect(page.get_by_role("navigation", include_hidden=True)).to_be_hidden()
    expect(page.get_by_role("button", name=t("Log out"), include_hidden=True)).to_be_hidden()
    expect(print_button).to_be_hidden()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(qr).to_be_visible()
    after = page.get_by_role("link", name=verify_url).evaluate("a => getComputedStyle(a, '::after').content")
    assert after in ("none", "normal"), f"the verification address is printed twice: {after!r} after it"
    page.emulate_media(media="screen")
    expect(page.get_by_role("navigation")).to_be_visible()
    assert errors == []


def test_an_uploaded_attestation_gets_its_verdict_on_the_list_without_a_reload(
    pipeline: Pipeline, context: BrowserContext
) -> None:
    page = context.new_page()
    errors = console_errors(page)
    log_in(page, pipeline.url, LEARNER)
    # The learner's own Python Basics badge, downloaded as a baked PNG, is what they upload.
    page.goto(f"{pipeline.url}/badges/{pipeline.certificate}")
    with page.expect_download() as download_info:
        page.get_by_role("link", name=t("Badge image with the credential inside (PNG)")).click()
    badge = download_info.value
    png = Path(badge.path()).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and badge.suggested_filename.endswith(".png")

    # Hold the importer, so that the list page is sure to show the upload still being checked.
    pipeline.workers["importer"].stop()
    page.get_by_role("navigation").get_by_role("link", name=t("External attestations")).click()
    page.get_by_label(t("File"), exact=True).set_input_files(
        {"name": badge.suggested_filename, "mimeType": "image/png", "buffer": png}
    )
    page.get_by_role("button", name=t("Upload"), exact=True).click()
    page.wait_for_url(re.compile(r"/attestations/[^/]+$"))
    attestation_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("status")).to_have_text(t("The file was received and is being checked."))
    expect(page.get_by_role("heading", level=1)).to_have_text(badge.suggested_filename)

    page.get_by_role("navigation").get_by_role("link", name=t("External attestations")).click()
    row = page.get_by_role("row").filter(has=page.locator(f"a[href='/attestations/{attestation_id}']"))
    status = row.get_by_role("cell").last
    expect(status).to_have_text(t("being checked"))
    page.evaluate("() => { window.stillTheSamePage = true; }")

    pipeline.workers["importer"] = Worker("importer", pipeline.settings)
    pipeline.workers["importer"].start()
    expect(status).not_to_have_text(t("being checked"), timeout=90_000)
    expect(status).to_have_text(t("verified"))  # our own signature: verified
    expect(row.get_by_role("link")).to_have_text("Python Basics")  # the title found in the badge
    expect(page.get_by_role("status")).to_have_text(f"Python Basics: {t('verified')}")  # announced
    assert page.evaluate("() => window.stillTheSamePage === true"), "the list page was reloaded"
    assert errors == []


def test_a_public_link_shows_the_credential_until_it_is_withdrawn(
    pipeline: Pipeline, chromium: Browser, context: BrowserContext
) -> None:
    page = context.new_page()
    log_in(page, pipeline.url, LEARNER)
    page.get_by_role("navigation").get_by_role("link", name=t("Digital badges")).click()
    page.get_by_role("link", name="Python Basics", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{t('Badge')}: Python Basics")
    criteria = "Complete every activity of the course and pass the final quiz."
    expect(page.get_by_text(criteria, exact=True)).to_have_attribute("lang", "en")  # WCAG 3.1.2
    links = page.get_by_role("region", name=t("Public links"))
    share_links = links.get_by_role("link", name=starts_with(f"{pipeline.url}/s/"))
    before = set(share_links.all_inner_texts())

    links.get_by_label(t("Link valid for")).select_option(label=t("{n} days", n=7))
    links.get_by_role("button", name=t("Create a public link")).click()
    expect(page).to_have_url(f"{pipeline.url}/badges/{pipeline.certificate}#links")
    expect(share_links).to_have_count(len(before) + 1)
    (share_url,) = set(share_links.all_inner_texts()) - before

    stranger = chromium.new_context(locale=LOCALES["pl"])
    try:
        public = stranger.new_page()
        response = public.goto(share_url)
        assert response is not None and response.status == 200
        expect(public.get_by_role("heading", level=1)).to_have_text(t("Shared credential"))
        facts = public.get_by_role("main")
        for fact in (LEARNER_NAME, "Python Basics", load_rules(pipeline.settings.rules_file).issuer.name):
            expect(facts).to_contain_text(fact)
        expect(
            public.get_by_role("link", name=t("Check it on the issuer's verification page"))
        ).to_have_attribute("href", f"{pipeline.url}/verify/{pipeline.certificate}")
        expect(public.get_by_role("navigation")).to_have_count(0)  # nobody is logged in here

        row = links.get_by_role("row").filter(has=page.get_by_role("link", name=share_url))
        row.get_by_role("button", name=t("Withdraw")).click()
        expect(row).to_contain_text(t("Withdrawn"))
        expect(row.get_by_role("button")).to_have_count(0)

        response = public.goto(share_url)
        assert response is not None and response.status == 410
        expect(public.get_by_role("main")).to_contain_text(t("This link was withdrawn by its owner."))
        expect(public.get_by_role("main")).not_to_contain_text(LEARNER_NAME)
    finally:
        stranger.close()


def test_an_admin_revokes_with_a_reason_that_the_learner_and_the_public_see(
    pipeline: Pipeline, chromium: Browser, context: BrowserContext
) -> None:
    code, reason = pipeline.codes[TO_REVOKE], "Egzamin praktyczny zdawała inna osoba"
    issuer = load_rules(pipeline.settings.rules_file).issuer.name
    admin = context.new_page()
    log_in(admin, pipeline.url, "admin")
    expect(admin).to_have_url(f"{pipeline.url}/admin")
    admin.get_by_role("link", name="Pierwsza pomoc przedmedyczna dla dorosłych").click()
    expect(admin).to_have_url(f"{pipeline.url}/admin/courses/{TO_REVOKE}")
    admin.get_by_label(t("Reason for revoking {code}", code=code)).fill(reason)
    admin.get_by_role("button", name=t("Revoke with this reason")).click()
    # The issuer carries the revocation out: the page waits a few seconds for it, and says when it is
    # still on its way (a busy machine); then the course page shows it once the issuer has done it.
    done, requested = (
        t("{code} was revoked.", code=code),
        t("Revocation of {code} requested; it takes effect within seconds.", code=code),
    )
    expect(admin.get_by_role("status")).to_have_text(
        re.compile(rf"^\s*({re.escape(done)}|{re.escape(requested)})\s*$")
    )
    row = admin.get_by_role("row").filter(has=admin.get_by_role("link", name=code))
    if admin.get_by_role("status").inner_text().strip() == requested:

        def revoked_on_the_page() -> bool:
            admin.reload()
            return f"{t('revoked')}: {reason}" in row.inner_text()

        wait_for(
            revoked_on_the_page, 60, "the revocation on the course page", list(pipeline.workers.values())
        )
    expect(row).to_contain_text(f"{t('revoked')}: {reason}")
    expect(row.get_by_role("button")).to_have_count(0)  # nothing left to revoke

    today = datetime.now(UTC)
    learner_context = chromium.new_context(locale=LOCALES["pl"])
    try:
        learner = learner_context.new_page()
        log_in(learner, pipeline.url, LEARNER)
        row = learner.get_by_role("row").filter(
            has=learner.get_by_role("link", name=re.compile("Pierwsza pomoc"))
        )
        expect(row.get_by_role("cell").nth(1)).to_have_text(t("revoked"))
        for path in (f"/certificates/{code}", f"/badges/{code}"):
            learner.goto(pipeline.url + path)
            expect(learner.get_by_text(t("revoked"), exact=True)).to_be_visible()
            expect(learner.get_by_role("main")).to_contain_text(
                t("Revoked on {date}. Reason: {reason}", date=format_date(today, "pl"), reason=reason)
            )
    finally:
        learner_context.close()

    for lang in ("pl", "en"):
        public_context = chromium.new_context(locale=LOCALES[lang])
        try:
            public = public_context.new_page()
            response = public.goto(f"{pipeline.url}/verify/{code}")
            assert response is not None and response.status == 200
            expect(public.get_by_role("status")).to_have_text(
                t(
                    "Revoked: {issuer} withdrew this credential on {date}. Reason: {reason}",
                    lang,
                    issuer=issuer,
                    date=format_date(today, lang),
                    reason=reason,
                )
            )
            answer = public.request.get(f"{pipeline.url}/verify/{code}?format=json").json()
            assert (answer["status"], answer["revocation_reason"]) == ("revoked", reason)
        finally:
            public_context.close()


@pytest.mark.parametrize("lang", ["pl", "en"])
def test_every_page_passes_axe_wcag_21_aa(pipeline: Pipeline, chromium: Browser, lang: str) -> None:
    other = "en" if lang == "pl" else "pl"
    ctx = axe_context(chromium, locale=LOCALES[other], viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(WAIT_MS)
    page = ctx.new_page()
    found: dict[str, list[dict[str, Any]]] = {}
    checked: list[str] = []

    def check(name: str, path: str, status: int = 200) -> None:
        response = page.goto(path if path.startswith("http") else pipeline.url + path)
        assert response is not None and response.status == status, (name, response and response.status)
        expect(page.locator("html")).to_have_attribute("lang", lang)
        violations = axe_violations(page)
        checked.append(name)
        if violations:
            found[name] = violations

    try:
        page.goto(f"{pipeline.url}/login")
        expect(page.locator("html")).to_have_attribute("lang", other)
        switch_language(page, lang)  # the browser asked for the other language: the form decides
        check("login", "/login")
        check("public link", pipeline.share_url)
        check("verification: valid", f"/verify/{pipeline.certificate}")
        check("verification: unknown code", "/verify/AAAA-BBBB-CCCC", 404)
        check("error 404", "/s/no-such-link", 404)

        log_in(page, pipeline.url, LEARNER, lang)
        check("certificates", "/certificates")
        check("certificate", f"/certificates/{pipeline.certificate}")
        check("badges", "/badges")
        check("badge", f"/badges/{pipeline.certificate}")
        check("attestations", "/attestations")
        check("attestation", f"/attestations/{pipeline.attestation_id}")
        check("error 404 (signed in)", "/certificates/AAAA-BBBB-CCCC", 404)
        page.goto(f"{pipeline.url}/badges/{pipeline.certificate}")
        page.get_by_role("button", name=t("Add to a wallet", lang)).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(t("Add to a wallet", lang))
        checked.append("wallet offer")
        if violations := axe_violations(page):
            found["wallet offer"] = violations

        page.get_by_role("button", name=t("Log out", lang)).click()
        page.wait_for_url(re.compile(r"/login$"))
        log_in(page, pipeline.url, "admin", lang)
        check("admin: courses", "/admin")
        check("admin: course", f"/admin/courses/{CERTIFICATE_AND_BADGE}")
        page.get_by_role("button", name=t("Wallet offer for {code}", lang, code=pipeline.certificate)).click()
        expect(page.get_by_text(t("Your wallet will ask for this code:", lang))).to_be_visible()
        checked.append("admin: wallet offer")
        if violations := axe_violations(page):
            found["admin: wallet offer"] = violations
    finally:
        ctx.close()
    assert len(checked) == 16
    assert not found, "\n\n".join(describe_violations(v, f"{name} ({lang})") for name, v in found.items())


@pytest.mark.parametrize("lang", ["pl", "en"])
def test_a_learner_adds_a_certificate_to_a_wallet_by_qr_code_or_link(
    pipeline: Pipeline, chromium: Browser, lang: str, tmp_path: Path
) -> None:
    """The offer page's QR code (read by zbar from the page as the browser drew it), its link and its
    text are the same offer, and a real wallet client takes the credential with it."""
    context = chromium.new_context(locale=LOCALES[lang], viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        log_in(page, pipeline.url, LEARNER, lang)
        page.goto(f"{pipeline.url}/certificates/{pipeline.certificate}")
        page.get_by_role("button", name=t("Add to a wallet", lang)).click()
        link = page.get_by_role("link", name=t("Open in a wallet on this device", lang))
        uri = link.get_attribute("href") or ""
        assert uri.startswith("openid-credential-offer://?credential_offer=")
        qr = page.get_by_role(
            "img",
            name=t(
                "QR code with the credential offer for your wallet; "
                "the same offer is in the link and the text below",
                lang,
            ),
        )
        qr.screenshot(path=str(tmp_path / "offer.png"))
        zbarimg = shutil.which("zbarimg")
        assert zbarimg, "zbarimg (Debian: zbar-tools) is needed"
        read = subprocess.run(
            [zbarimg, "--raw", "-q", str(tmp_path / "offer.png")], capture_output=True, text=True
        )
        assert read.stdout.splitlines() == [uri], read.stderr
        page.get_by_text(t("The offer as text (for wallets that take a pasted offer)", lang)).click()
        expect(page.get_by_label(t("Credential offer", lang))).to_have_value(uri)
        received = receive(uri)
        assert received["ok"], received["errors"]
        assert received["credentials"][0]["credentialSubject"]["id"] == received["holder_did"]
        page.goto(f"{pipeline.url}/certificates/{pipeline.certificate}")
        expect(page.locator(f'code.holder[title="{received["holder_did"]}"]')).to_have_count(1)
    finally:
        context.close()


def focused(page: Page) -> dict[str, Any]:
    """What has the keyboard focus, how its focus ring is drawn, and the colour the ring is drawn on
    (sampled on the ring itself, right of the element: the page behind it, whatever the DOM order)."""
    info: dict[str, Any] = page.evaluate(
        r"""() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            const label = el.labels && el.labels.length ? el.labels[0].textContent.trim() : "";
            const box = el.getBoundingClientRect();
            const width = parseFloat(style.outlineWidth) || 0;
            const x = Math.min(box.right + (parseFloat(style.outlineOffset) || 0) + width / 2,
                               document.documentElement.clientWidth - 1);
            const y = box.top + box.height / 2;
            let backdrop = "rgb(255, 255, 255)";
            for (let under of document.elementsFromPoint(x, y)) {
                if (under === el || el.contains(under)) continue;
                for (; under; under = under.parentElement) {
                    const colour = getComputedStyle(under).backgroundColor;
                    if (colour !== "transparent" && !/, 0\)$/.test(colour)) { backdrop = colour; break; }
                }
                break;
            }
            return {tag: el.tagName.toLowerCase(), id: el.id, text: (el.innerText || "").trim(), label,
                    value: el.value === undefined ? null : el.value, href: el.getAttribute("href"),
                    outline: style.outlineStyle, outlineWidth: width, outlineColor: style.outlineColor,
                    backdrop, onScreen: box.width > 0 && box.height > 0 && box.right > 0 && box.bottom > 0};
        }"""
    )
    return info


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two CSS rgb()/rgba() colours."""

    def luminance(colour: str) -> float:
        channels = [float(c) / 255 for c in re.findall(r"[\d.]+", colour)[:3]]
        r, g, b = ((c / 12.92) if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def visibly_focused(info: dict[str, Any]) -> bool:
    """An outline of 2 px or more, on screen, at 3:1 against what it is drawn on (WCAG 1.4.11)."""
    return (
        info["outline"] != "none"
        and info["outlineWidth"] >= 2
        and info["onScreen"]
        and contrast(info["outlineColor"], info["backdrop"]) >= 3
    )


def tab_to(
    page: Page, wanted: Callable[[dict[str, Any]], bool], what: str, limit: int = 40
) -> dict[str, Any]:
    """Tab until `wanted`; every stop on the way must show where the focus is."""
    path = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        path.append(now["text"] or now["label"] or now["tag"])
        assert visibly_focused(now), (
            f"no visible focus on {now}: contrast {contrast(now['outlineColor'], now['backdrop']):.2f}:1 "
            f"(on the way to {what})"
        )
        if wanted(now):
            return now
    raise AssertionError(f"{what} is not reachable with Tab; the focus went through {path}")


def test_keyboard_only_login_badge_and_public_link(pipeline: Pipeline, context: BrowserContext) -> None:
    page = context.new_page()
    errors = console_errors(page)
    keys = page.keyboard
    page.goto(f"{pipeline.url}/login")

    keys.press("Tab")
    first = focused(page)
    assert (first["text"], first["href"]) == (t("Skip to main content"), "#main"), first
    assert visibly_focused(first), f"the skip link is not visible when focused: {first}"
    keys.press("Enter")
    assert focused(page)["id"] == "main"

    tab_to(page, lambda f: f["label"] == t("Log in as"), "the account chooser")
    for _ in range(20):
        if focused(page)["value"] == str(LEARNER):
            break
        keys.press("ArrowDown")
    assert focused(page)["value"] == str(LEARNER)
    keys.press("Tab")
    assert focused(page)["text"] == t("Log in")
    keys.press("Enter")
    page.wait_for_url(f"{pipeline.url}/certificates")

    keys.press("Tab")
    assert focused(page)["text"] == t("Skip to main content")  # the first stop on every page
    tab_to(page, lambda f: f["tag"] == "a" and f["text"] == t("Digital badges"), "the badges section")
    keys.press("Enter")
    page.wait_for_url(f"{pipeline.url}/badges")
    tab_to(page, lambda f: f["tag"] == "a" and f["text"] == "Python Basics", "the Python Basics badge")
    keys.press("Enter")
    page.wait_for_url(f"{pipeline.url}/badges/{pipeline.certificate}")

    shares = page.get_by_role("region", name=t("Public links")).get_by_role(
        "link", name=starts_with(f"{pipeline.url}/s/")
    )
    before = shares.count()
    tab_to(page, lambda f: f["label"] == t("Link valid for"), "the link duration")
    keys.press("ArrowUp")  # 7 days instead of the preselected 30
    assert focused(page)["value"] == "7"
    tab_to(
        page, lambda f: f["text"] == t("Create a public link"), "the button that creates the link", limit=2
    )
    keys.press("Enter")
    page.wait_for_url(f"{pipeline.url}/badges/{pipeline.certificate}#links")
    expect(shares).to_have_count(before + 1)
    assert errors == []


def test_screenshots_of_the_sections_and_the_verification_page(pipeline: Pipeline, chromium: Browser) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    learner_context = chromium.new_context(locale=LOCALES["pl"], viewport={"width": 1100, "height": 800})
    written = []
    try:
        page = learner_context.new_page()
        log_in(page, pipeline.url, LEARNER)
        for lang in ("pl", "en"):
            switch_language(page, lang)
            for section, path, title in (
                ("certificates", "/certificates", "Certificates"),
                ("badges", "/badges", "Digital badges"),
                ("attestations", "/attestations", "External attestations"),
            ):
                page.goto(pipeline.url + path)
                expect(page.get_by_role("heading", level=1)).to_have_text(t(title, lang))
                target = SCREENSHOTS / f"{section}-{lang}.png"
                page.screenshot(path=str(target), full_page=True)
                written.append(target)
            public_context = chromium.new_context(
                locale=LOCALES[lang], viewport={"width": 1100, "height": 800}
            )
            try:
                public = public_context.new_page()
                public.goto(f"{pipeline.url}/verify/{pipeline.certificate}")
                expect(public.get_by_role("heading", level=1)).to_have_text(
                    t("Credential verification", lang)
                )
                target = SCREENSHOTS / f"verify-{lang}.png"
                public.screenshot(path=str(target), full_page=True)
                written.append(target)
            finally:
                public_context.close()
    finally:
        learner_context.close()
    assert len(written) == 8
    for target in written:
        assert target.is_file() and target.stat().st_size > 1000, target
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", target


def test_pages_reflow_at_320_css_pixels(pipeline: Pipeline, chromium: Browser) -> None:
    """WCAG 1.4.10: at 320 CSS px (a phone, or 400 % zoom) nothing but a data table scrolls sideways,
    and the facts of a credential stay readable (a description is not squeezed into a sliver)."""
    ctx = chromium.new_context(locale=LOCALES["pl"], viewport={"width": 320, "height": 640})
    ctx.set_default_timeout(WAIT_MS)
    problems = {}
    try:
        page = ctx.new_page()
        log_in(page, pipeline.url, LEARNER)
        for path in (
            "/login",
            "/certificates",
            f"/certificates/{pipeline.certificate}",
            "/badges",
            f"/badges/{pipeline.certificate}",
            "/attestations",
            f"/attestations/{pipeline.attestation_id}",
            f"/verify/{pipeline.certificate}",
            pipeline.share_url,
            "wallet offer",
        ):
            if path == "wallet offer":  # a POST's answer: the button on the badge page
                page.goto(f"{pipeline.url}/badges/{pipeline.certificate}")
                page.get_by_role("button", name=t("Add to a wallet")).click()
                page.get_by_text(t("The offer as text (for wallets that take a pasted offer)")).click()
            else:
                page.goto(path if path.startswith("http") else pipeline.url + path)
            found = page.evaluate(
                """() => {
                    const width = document.documentElement.clientWidth, found = [];
                    for (const el of document.querySelectorAll("body *")) {
                        const box = el.getBoundingClientRect();
                        if (!box.width || el.closest("table")) continue;
                        if (box.right > width + 1) found.push(`${el.tagName} sticks out: right=${box.right}`);
                        if (el.tagName === "DD" && box.width < width * 0.5)
                            found.push(`DD squeezed to ${box.width}px: ${el.textContent.slice(0, 30)}`);
                    }
                    return found;
                }"""
            )
            if found:
                problems[path] = found
    finally:
        ctx.close()
    assert not problems, problems


def test_a_browser_gets_the_error_page_for_an_unknown_address(
    pipeline: Pipeline, context: BrowserContext
) -> None:
    page = context.new_page()
    response = page.goto(f"{pipeline.url}/no-such-page")
    assert response is not None and response.status == 404
    expect(page.locator("html")).to_have_attribute("lang", "pl", timeout=2000)
    expect(page.get_by_role("heading", level=1)).to_have_text(t("Page not found"), timeout=2000)
    expect(page.get_by_role("link", name=t("Back to your e-Backpack"))).to_be_visible(timeout=2000)


def test_a_learner_downloads_everything_they_own_in_one_zip(
    pipeline: Pipeline, context: BrowserContext
) -> None:
    """Data portability: the ZIP from the certificates page holds every certificate PDF version as
    stored in S3, every credential form, the uploaded attestation as uploaded and its verdict, and an
    index that matches the database."""
    import hashlib
    import json
    import zipfile

    from ebackpack.adapters.persistence.tables import AttestationRow

    page = context.new_page()
    log_in(page, pipeline.url, LEARNER)
    with page.expect_download() as download_info:
        page.get_by_role("link", name=t("Download everything (ZIP)")).click()
    archive = zipfile.ZipFile(download_info.value.path())
    index = json.loads(archive.read("index.json"))
    objects = ObjectStore(pipeline.settings)
    sessions = prepare(pipeline.settings)
    with sessions() as session:
        awards = session.scalars(select(AwardRow).where(AwardRow.learner_id == LEARNER)).all()
        versions = session.scalars(
            select(CertificateRow).where(CertificateRow.credential_id.in_([a.credential_id for a in awards]))
        ).all()
        attestation = session.get(AttestationRow, pipeline.attestation_id)
    assert index["learner"]["name"] == LEARNER_NAME
    assert {c["verification_code"] for c in index["credentials"]} == {a.verification_code for a in awards}
    pdfs = [f for c in index["credentials"] for f in c["files"] if f["form"] == "certificate PDF"]
    assert sorted(f["sha256"] for f in pdfs) == sorted(v.sha256 for v in versions) and pdfs
    for listed in pdfs:
        content = archive.read(listed["path"])
        assert hashlib.sha256(content).hexdigest() == listed["sha256"]
        (stored,) = [v for v in versions if v.sha256 == listed["sha256"]]
        assert objects.get(stored.object_key) == content
    forms = {f["form"] for c in index["credentials"] for f in c["files"]}
    assert {"ob2", "ob3", "ob3-jwt", "ob3-png"} <= forms
    with sessions() as session:
        uploads = session.scalars(select(AttestationRow.id).where(AttestationRow.learner_id == LEARNER)).all()
    assert {a["id"] for a in index["attestations"]} == set(uploads)  # other tests may upload too
    (uploaded,) = [a for a in index["attestations"] if a["id"] == pipeline.attestation_id]
    assert attestation is not None and attestation.object_key is not None
    original = next(f for f in uploaded["files"] if f["form"] == "as uploaded")
    assert archive.read(original["path"]) == objects.get(attestation.object_key)
    verdict = json.loads(archive.read(f"attestations/{attestation.id}/verdict.json"))
    assert verdict["verification_status"] == attestation.verification_status


@pytest.mark.parametrize("lang", ["pl", "en"])
def test_anyone_checks_a_pdf_on_the_verification_page_by_keyboard(
    pipeline: Pipeline, chromium: Browser, lang: str, tmp_path: Path
) -> None:
    """ "Is this PDF genuine?": the stored PDF is genuine, a copy with one byte changed is not as issued
    (and named), the answer page passes axe; the file field and the button are reached by Tab."""
    code = pipeline.certificate
    sessions = prepare(pipeline.settings)
    with sessions() as session:
        award = session.scalars(select(AwardRow).where(AwardRow.verification_code == code)).one()
        stored = session.scalars(
            select(CertificateRow).where(CertificateRow.credential_id == award.credential_id)
        ).first()
    assert stored is not None
    genuine = ObjectStore(pipeline.settings).get(stored.object_key)
    at = genuine.index(b"/ID [<") + len(b"/ID [<")
    altered = genuine[:at] + (b"0" if genuine[at : at + 1] != b"0" else b"1") + genuine[at + 1 :]
    (tmp_path / "genuine.pdf").write_bytes(genuine)
    (tmp_path / "altered.pdf").write_bytes(altered)
    genuine_key = (
        "Genuine: this is certificate {code} as we issued it, unaltered "
        "(version {n} of {total}, rendered {date})."
    )
    answers = {
        # up to the version, which another test's re-render may change
        "genuine.pdf": t(genuine_key, lang, code=code, n=0, total=0, date="").split(" (")[0],
        "altered.pdf": t("Not as we issued it: this file differs from certificate {code}.", lang, code=code),
    }
    ctx = axe_context(chromium, locale=LOCALES[lang], viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(WAIT_MS)
    try:
        page = ctx.new_page()
        for name, expected in answers.items():
            page.goto(f"{pipeline.url}/verify/{code}?lang={lang}")
            field = page.get_by_label(t("Certificate PDF to check", lang))
            field.set_input_files(str(tmp_path / name))
            field.focus()
            page.keyboard.press("Tab")
            expect(page.get_by_role("button", name=t("Check the PDF", lang))).to_be_focused()
            page.keyboard.press("Enter")
            expect(page.get_by_role("status")).to_contain_text(expected)
            violations = axe_violations(page)
            assert not violations, describe_violations(violations, f"PDF check ({name}, {lang})")
    finally:
        ctx.close()
