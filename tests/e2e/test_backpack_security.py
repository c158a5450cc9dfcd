"""The backpack's web security, over HTTP against the running app (no browser needed).

Two learners with a credential, a public link and an external attestation each (issued by the issuer's
service layer, uploads through the backpack's own upload service); the app served by uvicorn. Checked:
nobody reaches another learner's items by guessing or knowing their codes, ids and tokens (404, the same
answer as for something that does not exist); pages send strangers to the login and the API answers 401;
state-changing forms and API calls need the session's CSRF token; the session cookie's flags; a
Content-Security-Policy on every HTML page (and no inline code it would block); the rate limit of the
public verification pages.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from ebackpack.adapters.credential_exports import FORMATS
from ebackpack.adapters.keystore import code_secret_for
from ebackpack.adapters.persistence.tables import AwardRow, SignedCredentialRow, WebSessionRow
from ebackpack.adapters.storage import ObjectStore
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.sample_data import default_dataset
from ebackpack.domain.credentials.facts import learner_subject_id
from ebackpack.domain.rules import load_rules
from schemas import deterministic_id
from services.backpack.app import create_app
from services.backpack.session import SESSION_COOKIE
from services.backpack.shares import Shares
from services.backpack.uploads import Announcer, AttestationUploads
from services.gateway.profiles import store_profiles
from services.importer.service import ImporterService
from services.issuer.service import IssuerService
from tests.builders import completion
from tests.conftest import WebServer, isolated, reserve_port

pytestmark = pytest.mark.e2e

ALICE, BOB = 5722, 5723  # Jan Kowalski and Zofia Wiśniewska-Żółkiewska of the sample profiles
COURSE = 42  # python-basics: badge and certificate
EXAMPLE = (
    Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "external" / "ob3-1edtech" / "simple.json"
)
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
GUESSES = ("AAAA-BBBB-CCCC", "ZZZZ-9999-ZZZZ")


@dataclass
class Items:
    """One learner's things: a credential's code, a public link's token, an attestation's id."""

    code: str
    share: str
    attestation: str


@dataclass
class World:
    settings: Settings
    url: str
    items: dict[int, Items]
    uploads: AttestationUploads
    service: IssuerService


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, stack_settings: Settings) -> Iterator[World]:
    web = reserve_port()
    settings = isolated(stack_settings, tmp_path_factory.mktemp("security"), web).model_copy(
        update={"dev_login": True}
    )
    sessions = prepare(settings)
    store_profiles(sessions, default_dataset().profiles)
    service = IssuerService(sessions, load_rules(settings.rules_file), settings)
    for learner in (ALICE, BOB):
        service.handle(completion(learner, COURSE, datetime(2026, 1, 12, tzinfo=UTC)))
    announcer = Announcer(settings)
    uploads = AttestationUploads(sessions, ObjectStore(settings), settings, announcer)
    items = {}
    with sessions.begin() as s:
        shares = {
            a.learner_id: (a.verification_code, Shares(s).create(a.learner_id, a.credential_id, 30).token)
            for a in s.scalars(select(AwardRow))
        }
    for learner, (code, share) in shares.items():
        attestation = uploads.receive_file(learner, EXAMPLE.read_bytes(), "simple.json")
        items[learner] = Items(code, share, attestation.row["id"])
    assert set(items) == {ALICE, BOB}
    try:
        with WebServer(settings, web) as server:
            yield World(settings, server.url, items, uploads, service)
    finally:
        announcer.close()
        web.close()


class Visitor:
    """A browser without JavaScript: cookies, no redirects followed, the CSRF token read from forms."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
        self.csrf = ""

    def refresh_csrf(self) -> str:
        found = CSRF_FIELD.search(self.http.get("/login").text)
        assert found, "no CSRF token in the login page's forms"
        self.csrf = found.group(1)
        return self.csrf

    def log_in(self, account: int | str) -> Visitor:
        answer = self.http.post(
            "/login/dev", data={"csrf_token": self.refresh_csrf(), "account": str(account)}
        )
        assert answer.status_code == 303, answer.text
        self.refresh_csrf()  # a new session, a new token
        return self

    def form(self, path: str, **fields: str) -> httpx.Response:
        return self.http.post(path, data={"csrf_token": self.csrf, **fields})


@pytest.fixture
def alice(world: World) -> Iterator[Visitor]:
    visitor = Visitor(world.url).log_in(ALICE)
    yield visitor
    visitor.http.close()


@pytest.fixture
def stranger(world: World) -> Iterator[Visitor]:
    visitor = Visitor(world.url)
    yield visitor
    visitor.http.close()


def share_state(world: World, learner: int, token: str) -> str:
    with world.service.sessions() as s:
        share = Shares(s).find(token)
        assert share is not None and share.token == token
        return share.state(datetime.now(UTC))


def shares_of(world: World, learner: int) -> int:
    with world.service.sessions() as s:
        award = s.scalars(select(AwardRow).where(AwardRow.learner_id == learner)).one()
        return len(Shares(s).of_credential(learner, award.credential_id))


# ---------------------------------------------------------------------------------------- ownership


def test_a_learner_cannot_read_download_share_or_delete_another_learners_items(
    world: World, alice: Visitor
) -> None:
    bob = world.items[BOB]
    other_uuid = str(uuid.uuid4())
    csrf = {"X-CSRF-Token": alice.csrf}
    reads = [
        f"/certificates/{bob.code}",
        f"/badges/{bob.code}",
        f"/attestations/{bob.attestation}",
        f"/api/credentials/{bob.code}",
        f"/api/credentials/{bob.code}/shares",
        f"/api/attestations/{bob.attestation}",
        f"/api/attestations/{bob.attestation}/original",
    ]
    reads += [f"/badges/{bob.code}/download/{fmt}" for fmt in FORMATS]
    for path in reads:
        assert alice.http.get(path).status_code == 404, path

    changes = {
        "form: share": alice.form(f"/badges/{bob.code}/shares", days="30"),
        "form: withdraw": alice.form(f"/shares/{bob.share}/withdraw"),
        "form: recheck": alice.form(f"/attestations/{bob.attestation}/recheck"),
        "form: delete": alice.form(f"/attestations/{bob.attestation}/delete"),
        "api: share": alice.http.post(f"/api/credentials/{bob.code}/shares", json={"days": 30}, headers=csrf),
        "api: withdraw": alice.http.post(f"/api/shares/{bob.share}/withdraw", headers=csrf),
        "api: recheck": alice.http.post(f"/api/attestations/{bob.attestation}/recheck", headers=csrf),
        "api: delete": alice.http.delete(f"/api/attestations/{bob.attestation}", headers=csrf),
    }
    assert {what: r.status_code for what, r in changes.items()} == dict.fromkeys(changes, 404)

    # Nothing of Bob's changed: his one link still works, his attestation is still there.
    assert shares_of(world, BOB) == 1 and share_state(world, BOB, bob.share) == "active"
    assert world.uploads.get(BOB, bob.attestation)["id"] == bob.attestation
    assert alice.http.get(f"/s/{bob.share}").status_code == 200  # a public link is public, by design

    # Another learner's item looks exactly like one that does not exist.
    for mine, missing in (
        (f"/api/credentials/{bob.code}", f"/api/credentials/{GUESSES[0]}"),
        (f"/api/attestations/{bob.attestation}", f"/api/attestations/{other_uuid}"),
        (f"/badges/{bob.code}", f"/badges/{GUESSES[0]}"),
    ):
        theirs, nothing = alice.http.get(mine), alice.http.get(missing)
        assert (theirs.status_code, theirs.text) == (nothing.status_code, nothing.text), mine

    # Guessed codes, tokens and ids find nothing, and the lists hold only Alice's own items.
    for guess in GUESSES:
        assert alice.http.get(f"/certificates/{guess}").status_code == 404
        assert alice.http.get(f"/api/credentials/{guess}").status_code == 404
    assert alice.http.get("/s/" + "A" * 43).status_code == 404
    assert alice.form("/shares/" + "A" * 43 + "/withdraw").status_code == 404
    assert alice.http.get(f"/api/attestations/{other_uuid}/original").status_code == 404
    assert [c["code"] for c in alice.http.get("/api/credentials").json()] == [world.items[ALICE].code]
    assert [a["id"] for a in alice.http.get("/api/attestations").json()] == [world.items[ALICE].attestation]


def test_a_learner_is_not_an_administrator(world: World, alice: Visitor) -> None:
    bob = world.items[BOB]
    assert alice.http.get("/admin").status_code == 403
    assert alice.http.get(f"/admin/courses/{COURSE}").status_code == 403
    assert alice.http.get(f"/admin/courses/{COURSE}/certificates.zip").status_code == 403
    assert alice.form(f"/admin/credentials/{bob.code}/revoke", reason="I do not like Bob").status_code == 403
    assert alice.form(f"/admin/courses/{COURSE}/rerender").status_code == 403
    assert alice.http.get(f"/verify/{bob.code}", params={"format": "json"}).json()["status"] == "valid"


# ------------------------------------------------------------------------------------ authentication


def test_strangers_are_sent_to_the_login_page_and_the_api_answers_401(
    world: World, stranger: Visitor
) -> None:
    mine = world.items[ALICE]
    for path in (
        "/certificates",
        f"/certificates/{mine.code}",
        "/badges",
        f"/badges/{mine.code}",
        f"/badges/{mine.code}/download/ob3",
        "/attestations",
        f"/attestations/{mine.attestation}",
        "/admin",
        f"/admin/courses/{COURSE}",
    ):
        answer = stranger.http.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == f"/login?next={path}", path
    assert stranger.http.get("/").headers["location"] == "/login"

    api = [
        ("GET", "/api/credentials"),
        ("GET", f"/api/credentials/{mine.code}"),
        ("GET", f"/api/credentials/{mine.code}/shares"),
        ("POST", f"/api/credentials/{mine.code}/shares"),
        ("POST", f"/api/shares/{mine.share}/withdraw"),
        ("GET", "/api/attestations"),
        ("GET", f"/api/attestations/{mine.attestation}"),
        ("GET", f"/api/attestations/{mine.attestation}/original"),
        ("DELETE", f"/api/attestations/{mine.attestation}"),
        ("POST", "/api/attestations/links"),
    ]
    for method, path in api:
        answer = stranger.http.request(method, path, json={})
        assert answer.status_code == 401, (method, path, answer.status_code)
        assert answer.headers["www-authenticate"].startswith("Bearer"), path
    forged = stranger.http.get("/api/credentials", headers={"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 401 and 'error="invalid_token"' in forged.headers["www-authenticate"]
    assert share_state(world, ALICE, mine.share) == "active"
    assert world.uploads.get(ALICE, mine.attestation)["id"] == mine.attestation


# -------------------------------------------------------------------------------------------- CSRF


def test_forms_and_api_changes_without_the_sessions_csrf_token_are_refused(
    world: World, alice: Visitor
) -> None:
    mine = world.items[ALICE]
    forms: dict[str, dict[str, str]] = {
        "/logout": {},
        "/language": {"lang": "en", "next": "/certificates"},
        f"/badges/{mine.code}/shares": {"days": "30"},
        f"/shares/{mine.share}/withdraw": {},
        "/attestations/links": {"url": "https://example.org/badge.json"},
        f"/attestations/{mine.attestation}/recheck": {},
        f"/attestations/{mine.attestation}/delete": {},
    }
    shares_before, attestations_before = shares_of(world, ALICE), len(world.uploads.list(ALICE))
    for path, fields in forms.items():
        assert alice.http.post(path, data=fields).status_code == 403, f"{path} without a token"
        for wrong in ("", "x", alice.csrf[:-1], Visitor(world.url).refresh_csrf()):
            answer = alice.http.post(path, data={**fields, "csrf_token": wrong})
            assert answer.status_code == 403, f"{path} with the token {wrong!r}"
    upload = alice.http.post(
        "/attestations", files={"file": ("simple.json", EXAMPLE.read_bytes())}, data={"csrf_token": "forged"}
    )
    assert upload.status_code == 403

    # Nothing happened: still signed in, in Polish, the same links and attestations.
    page = alice.http.get("/certificates")
    assert page.status_code == 200 and '<html lang="pl">' in page.text
    assert shares_of(world, ALICE) == shares_before and share_state(world, ALICE, mine.share) == "active"
    assert len(world.uploads.list(ALICE)) == attestations_before

    # The JSON API with the session cookie: changes need the X-CSRF-Token header.
    path = f"/api/credentials/{mine.code}/shares"
    assert alice.http.post(path, json={"days": 7}).status_code == 403
    assert alice.http.post(path, json={"days": 7}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert alice.http.delete(f"/api/attestations/{mine.attestation}").status_code == 403
    assert shares_of(world, ALICE) == shares_before

    # The same requests with the token work: the 403s above were the CSRF check.
    assert alice.form("/language", lang="pl", next="/certificates").status_code == 303
    created = alice.http.post(path, json={"days": 7}, headers={"X-CSRF-Token": alice.csrf})
    assert created.status_code == 201 and shares_of(world, ALICE) == shares_before + 1
    assert alice.form(f"/shares/{created.json()['token']}/withdraw").status_code == 303


def test_the_login_and_admin_forms_need_the_token_too(world: World, stranger: Visitor) -> None:
    stranger.refresh_csrf()
    assert stranger.http.post("/login/dev", data={"account": str(ALICE)}).status_code == 403
    assert stranger.http.post("/login/dev", data={"account": "admin", "csrf_token": "x"}).status_code == 403
    assert stranger.http.get("/certificates").status_code == 303  # not signed in
    before = stranger.csrf
    stranger.log_in(ALICE)
    assert stranger.csrf != before  # signing in starts a fresh session: no fixation of the old one
    assert stranger.http.get("/certificates").status_code == 200

    admin = Visitor(world.url).log_in("admin")
    try:
        code = world.items[BOB].code
        assert (
            admin.http.post(f"/admin/credentials/{code}/revoke", data={"reason": "forged"}).status_code == 403
        )
        assert (
            admin.http.post(f"/admin/courses/{COURSE}/rerender", data={"csrf_token": "x"}).status_code == 403
        )
        assert admin.http.get(f"/verify/{code}", params={"format": "json"}).json()["status"] == "valid"
        assert admin.http.get("/admin").status_code == 200  # the admin session itself is fine
    finally:
        admin.http.close()


# ------------------------------------------------------------------------------------ headers, cookies


def set_cookie(response: httpx.Response, name: str) -> list[str]:
    """The attributes of the Set-Cookie header for `name`, lower-cased (the value dropped)."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return [part.strip().lower() for part in header.split(";")[1:]]
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers.get_list('set-cookie')}")


def test_the_session_cookie_is_httponly_and_samesite_lax_and_secure_behind_https(
    world: World, stranger: Visitor
) -> None:
    attributes = set_cookie(stranger.http.get("/login"), SESSION_COOKIE)
    assert "httponly" in attributes and "samesite=lax" in attributes and "path=/" in attributes
    assert "secure" not in attributes  # http://127.0.0.1: a Secure cookie would never come back
    stranger.refresh_csrf()
    language = set_cookie(stranger.form("/language", lang="en", next="/login"), "ebackpack_lang")
    assert "httponly" in language and "samesite=lax" in language

    https = world.settings.model_copy(update={"public_url": "https://backpack.example.org"})
    with TestClient(create_app(https), base_url="https://backpack.example.org") as client:
        login = client.get("/login")
        attributes = set_cookie(login, SESSION_COOKIE)
        assert {"httponly", "samesite=lax", "secure"} <= set(attributes)
        assert login.headers["strict-transport-security"].startswith("max-age=")
        token = CSRF_FIELD.search(login.text)
        assert token is not None
        signed_in = client.post(
            "/login/dev", data={"csrf_token": token.group(1), "account": str(ALICE)}, follow_redirects=False
        )
        assert signed_in.status_code == 303
        assert {"httponly", "samesite=lax", "secure"} <= set(set_cookie(signed_in, SESSION_COOKIE))
        page = CSRF_FIELD.search(client.get("/certificates").text)
        assert page is not None
        chosen = client.post(
            "/language", data={"csrf_token": page.group(1), "lang": "en"}, follow_redirects=False
        )
        assert {"httponly", "samesite=lax", "secure"} <= set(set_cookie(chosen, "ebackpack_lang"))


INLINE_CODE = [
    re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),  # inline script
    re.compile(r"<style\b", re.I),  # style element
    re.compile(r"\sstyle=", re.I),  # style attribute
    re.compile(r"\son[a-z]+=", re.I),  # event handler attribute
    re.compile(r"javascript:", re.I),
]


def test_every_html_page_has_a_content_security_policy_it_does_not_break(
    world: World, stranger: Visitor
) -> None:
    mine = world.items[ALICE]
    admin = Visitor(world.url).log_in("admin")
    alice = Visitor(world.url).log_in(ALICE)
    try:
        pages = [
            (stranger, "/login", 200),
            (stranger, f"/verify/{mine.code}", 200),
            (stranger, f"/verify/{GUESSES[0]}", 404),
            (stranger, f"/s/{mine.share}", 200),
            (stranger, "/s/" + "A" * 43, 404),
            (alice, "/certificates", 200),
            (alice, f"/certificates/{mine.code}", 200),
            (alice, "/badges", 200),
            (alice, f"/badges/{mine.code}", 200),
            (alice, "/attestations", 200),
            (alice, f"/attestations/{mine.attestation}", 200),
            (alice, f"/badges/{GUESSES[0]}", 404),
            (alice, "/admin", 403),
            (admin, "/admin", 200),
            (admin, f"/admin/courses/{COURSE}", 200),
            (admin, "/admin/courses/999", 404),
        ]
        for visitor, path, status in pages:
            answer = visitor.http.get(path, headers={"Accept": "text/html"})
            assert answer.status_code == status, path
            assert answer.headers["content-type"].startswith("text/html"), path
            policy = answer.headers.get("content-security-policy", "")
            for directive in (
                "default-src 'self'",
                "script-src 'self'",
                "style-src 'self'",
                "object-src 'none'",
                "base-uri 'none'",
                "form-action 'self'",
                "frame-ancestors 'self'",
            ):
                assert directive in policy, (path, directive, policy)
            assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, path
            assert answer.headers["x-content-type-options"] == "nosniff", path
            for pattern in INLINE_CODE:
                found = pattern.search(answer.text)
                assert found is None, f"{path}: {found and found.group(0)!r} would be blocked by the policy"
        original = alice.http.get(f"/api/attestations/{mine.attestation}/original")
        assert original.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert original.headers["content-disposition"].startswith("attachment")
    finally:
        admin.http.close()
        alice.http.close()


# --------------------------------------------------------------------------------------- rate limit


def test_the_verification_pages_are_rate_limited(world: World) -> None:
    web = reserve_port()
    port = web.getsockname()[1]
    limited = world.settings.model_copy(
        update={"verify_rate_limit": "5/minute", "http_port": port, "public_url": f"http://127.0.0.1:{port}"}
    )
    code = world.items[ALICE].code
    try:
        with WebServer(limited, web) as server, httpx.Client(base_url=server.url, timeout=30) as client:
            answers = [client.get(f"/verify/{code}", headers={"Accept": "text/html"}) for _ in range(5)]
            assert [a.status_code for a in answers] == [200] * 5
            refused = client.get(f"/verify/{code}", headers={"Accept": "text/html"})
            assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
            assert refused.headers["content-type"].startswith("text/html")
            assert "content-security-policy" in refused.headers
            assert "Zbyt wiele zapytań" in refused.text  # the error page, in the visitor's language
            as_json = client.get(
                f"/verify/{code}", params={"format": "json"}, headers={"Accept": "application/json"}
            )
            assert as_json.status_code == 429 and as_json.json() == {"detail": "too many requests"}
            assert as_json.headers["retry-after"] == "60"
            assert (
                client.get(f"/s/{world.items[ALICE].share}").status_code == 429
            )  # public links share the count
            assert client.get("/login").status_code == 200  # the rest of the site is not limited
    finally:
        web.close()


# ------------------------------------------------------------------- file names, links from credentials


def test_an_original_named_in_polish_downloads_under_its_own_name(world: World, alice: Visitor) -> None:
    name = "świadectwo.json"
    sent = alice.http.post(
        "/api/attestations",
        files={"file": (name, EXAMPLE.read_bytes(), "application/json")},
        headers={"X-CSRF-Token": alice.csrf},
    )
    assert sent.status_code == 202, sent.text
    attestation = sent.json()["id"]
    try:
        original = alice.http.get(f"/api/attestations/{attestation}/original")
        assert original.status_code == 200 and original.content == EXAMPLE.read_bytes()
        disposition = original.headers["content-disposition"]
        assert disposition.startswith("attachment;")
        extended = re.search(r"filename\*=UTF-8''([^;\s]+)", disposition)  # RFC 6266: what browsers use
        assert extended and unquote(extended.group(1)) == name
        assert 'filename="_wiadectwo.json"' in disposition  # the ASCII fallback of older clients
    finally:
        world.uploads.delete(ALICE, attestation)


def test_the_admin_forms_way_back_may_hold_any_characters(world: World) -> None:
    admin = Visitor(world.url).log_in("admin")
    try:
        answer = admin.form(
            f"/admin/credentials/{world.items[BOB].code}/revoke",
            reason="   ",  # no reason: nothing is revoked, the form only sends the admin back
            back=f"/admin/courses/{COURSE}?szukaj=świadectwo",
        )
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == f"/admin/courses/{COURSE}?szukaj=%C5%9Bwiadectwo"
        elsewhere = admin.form(
            f"/admin/credentials/{world.items[BOB].code}/revoke", reason=" ", back="//evil.example/admin"
        )
        assert elsewhere.headers["location"] == "/admin"
    finally:
        admin.http.close()


HOSTILE_URLS = ("javascript:alert(document.domain)", "java\tscript:alert(1)", "data:text/html,<b>x</b>")


def test_only_http_links_of_an_uploaded_credential_become_links(world: World, alice: Visitor) -> None:
    """The importer keeps the issuer's URL as the credential states it; the page links only http(s)."""
    importer = ImporterService(
        world.uploads.sessions,
        ObjectStore(world.settings),
        load_rules(world.settings.rules_file),
        world.settings,
    )
    for url in HOSTILE_URLS + ("https://issuer.example/about",):
        credential = json.loads(EXAMPLE.read_text())
        credential["issuer"]["url"] = url
        received = world.uploads.receive_file(ALICE, json.dumps(credential).encode(), "hostile.json")
        attestation = received.row["id"]
        try:
            importer.check(attestation)
            record = world.uploads.get(ALICE, attestation)["record"]
            assert record is not None and record["issuer"]["url"] == url  # kept as stated, shown as text
            page = alice.http.get(f"/attestations/{attestation}")
            assert page.status_code == 200
            hrefs = re.findall(r'href="([^"]*)"', page.text)
            if url.startswith("https:"):
                assert url in hrefs
            else:
                bare = [h.replace("\t", "").lower() for h in hrefs]
                scripted = [h for h in bare if h.startswith(("javascript", "data"))]
                assert not scripted
                assert "Example Corp" in page.text
        finally:
            world.uploads.delete(ALICE, attestation)


# ------------------------------------------------------------------------- public pages and identifiers


def readable(document: str) -> str:
    """A signed credential as text: JSON as it is, a VC-JWT's payload decoded."""
    if document.lstrip().startswith("{"):
        return document
    payload = document.split(".")[1]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()


def test_public_pages_show_no_identifier_a_learner_id_can_be_found_from(world: World) -> None:
    """A UUIDv5 of (site, Moodle user id, rule) would let anyone with the QR code try every user id until
    one matches. Public answers carry no id of that form, nor the credential id; the signed credentials
    (attached to the public PDF) carry only keyed ids."""
    with world.service.sessions() as s:
        award = s.scalars(select(AwardRow).where(AwardRow.learner_id == ALICE)).one()
        credential_id, rule_id = award.credential_id, award.rule_id
        signed = [
            readable(row.document)
            for row in s.scalars(
                select(SignedCredentialRow).where(SignedCredentialRow.credential_id == credential_id)
            )
        ]
    site = world.settings.site_id
    public_formula = {
        "learner subject id by a public formula": deterministic_id("learner", site, ALICE),
        "credential id by a public formula": deterministic_id("credential", site, ALICE, rule_id),
    }
    invertible = {
        **public_formula,
        "credential id": credential_id,
        **{f"{name}, another form": uuid.UUID(value).hex for name, value in public_formula.items()},
    }
    assert signed, "the award has signed credentials"
    for document in signed:
        for name, value in public_formula.items():
            assert value not in document and uuid.UUID(value).hex not in document, name
        assert learner_subject_id(site, ALICE, code_secret_for(world.settings)) in document
    code, share = world.items[ALICE].code, world.items[ALICE].share
    with httpx.Client(base_url=world.url, timeout=30) as visitor:
        answers = {
            "verification JSON": visitor.get(f"/verify/{code}", params={"format": "json"}),
            "verification page": visitor.get(f"/verify/{code}", headers={"Accept": "text/html"}),
            "OB 2.0 assertion": visitor.get(f"/ob2/assertions/{code}"),
            "baked SVG": visitor.get(f"/ob2/assertions/{code}/badge.svg"),
            "baked PNG": visitor.get(f"/ob2/assertions/{code}/badge.png"),
            "share page": visitor.get(f"/s/{share}"),
            "status list": visitor.get("/status/0"),
            "issuer": visitor.get("/ob2/issuer"),
        }
    assert answers["verification JSON"].json()["status"] == "valid"
    for what, answer in answers.items():
        if what != "status list":
            assert answer.status_code == 200, what
        body = answer.content.decode("latin-1").lower()
        for name, value in invertible.items():
            assert value.lower() not in body, f"{what} shows the {name}"
    assert "credential_id" not in answers["verification JSON"].json()


# ------------------------------------------------------------------------------------ ending sessions


def web_sessions(world: World) -> list[WebSessionRow]:
    with world.service.sessions() as s:
        return list(s.scalars(select(WebSessionRow)))


def test_logout_ends_the_session_on_the_server(world: World) -> None:
    for account, page in ((ALICE, "/api/credentials"), ("admin", "/admin")):
        visitor = Visitor(world.url).log_in(account)
        captured = visitor.http.cookies[SESSION_COOKIE]  # e.g. copied from a shared computer
        assert visitor.http.get(page).status_code == 200
        assert visitor.form("/logout").status_code == 303
        visitor.http.close()
        with httpx.Client(base_url=world.url, cookies={SESSION_COOKIE: captured}, timeout=30) as thief:
            answer = thief.get(page)
            assert answer.status_code in (401, 303), (account, answer.status_code)
            if answer.status_code == 303:
                assert answer.headers["location"].startswith("/login")
            assert thief.get("/certificates").status_code == 303


def test_an_expired_session_ends_and_is_cleaned_up(world: World) -> None:
    alice = Visitor(world.url).log_in(ALICE)
    assert alice.http.get("/api/credentials").status_code == 200
    mine = {row.id_hash for row in web_sessions(world)}
    with world.service.sessions.begin() as s:  # eight hours later
        s.execute(update(WebSessionRow).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert alice.http.get("/api/credentials").status_code == 401
    alice.http.close()
    fresh = Visitor(world.url).log_in(BOB)  # a sign-in deletes the expired rows
    try:
        assert not mine & {row.id_hash for row in web_sessions(world)}
        assert fresh.http.get("/api/credentials").status_code == 200
        # The cookie holds a random id; the table only its SHA-256.
        assert all(len(row.id_hash) == 64 for row in web_sessions(world))
    finally:
        fresh.http.close()
