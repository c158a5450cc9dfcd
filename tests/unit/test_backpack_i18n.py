"""Every text the pages show has its Polish translation, and the language choice follows the visitor."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request

from services.backpack import admin, pages, preferences, web
from services.backpack.i18n import POLISH, format_date, language_of, translate

BACKPACK = Path(pages.__file__).resolve().parent
LITERAL = re.compile(r"""\bt\(\s*(["'])(.+?)\1\s*[,)]""")
FLASH = re.compile(r"""flash\(request,\s*"(.+?)"[,)]""")


def texts_in_templates() -> set[str]:
    found = set()
    for template in (BACKPACK / "templates").glob("*.html"):
        found |= {m.group(2) for m in LITERAL.finditer(template.read_text())}
        # labels passed through a variable: ("/certificates", "Certificates"), status words, dict values
        found |= set(re.findall(r'\("/[a-z]+", "([^"]+)"\)', template.read_text()))
    return found


def texts_in_code() -> set[str]:
    found = set(pages.DOWNLOADS.values()) | set(web.ERROR_TITLES.values())
    for module in (pages, admin, preferences):
        found |= set(FLASH.findall(Path(module.__file__).read_text()))
    return found


def test_every_text_of_the_pages_has_a_polish_translation() -> None:
    texts = texts_in_templates() | texts_in_code()
    assert len(texts) > 100  # the scan finds the texts at all
    missing = sorted(t for t in texts if t not in POLISH)
    assert missing == []


def test_statuses_are_translated_as_words() -> None:
    for status in (
        "valid",
        "revoked",
        "expired",
        "unknown",
        "verified",
        "signature valid but issuer not known",
        "not verifiable",
        "invalid",
    ):
        assert translate(status, "pl") != status


def request(headers: dict[str, str], cookies: str = "") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if cookies:
        raw.append((b"cookie", cookies.encode()))
    return Request({"type": "http", "headers": raw, "session": {}})


def test_the_choice_wins_over_the_browser_and_polish_is_the_default() -> None:
    assert language_of(request({"Accept-Language": "en-GB,en;q=0.9"})) == "en"
    assert language_of(request({"Accept-Language": "de-DE"})) == "pl"
    assert language_of(request({"Accept-Language": "en"}, cookies="ebackpack_lang=pl")) == "pl"


def test_dates_read_naturally_in_both_languages() -> None:
    from datetime import datetime

    moment = datetime(2026, 3, 15)
    assert format_date(moment, "pl") == "15 marca 2026"
    assert format_date(moment, "en") == "15 March 2026"
    assert (
        translate("Revoked on {date}. Reason: {reason}", "pl", date="1 maja 2026", reason="błąd")
        == "Unieważnione 1 maja 2026. Powód: błąd"
    )
