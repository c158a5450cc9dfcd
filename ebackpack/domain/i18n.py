"""Polish and English, the two languages every learner-facing text is written in: one place for the
language codes, the month names of written dates and the lookup of a Polish translation.

Each service keeps its own catalogue (`POLISH`: the English text is the key) beside the texts it writes:
the backpack's pages, the notifier's messages. Numbers with their nouns are in ebackpack/plurals.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

LANGUAGES = ("pl", "en")
DEFAULT_LANGUAGE = "pl"

# Own month names instead of the C locale: output must not depend on the host's installed locales.
# Polish dates take the genitive: `15 marca 2026`.
MONTHS: dict[str, tuple[str, ...]] = {
    "pl": (
        "stycznia",
        "lutego",
        "marca",
        "kwietnia",
        "maja",
        "czerwca",
        "lipca",
        "sierpnia",
        "września",
        "października",
        "listopada",
        "grudnia",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}


def supported_language(lang: str | None) -> str:
    """The language itself when it is one we write, else the default (Polish)."""
    return lang if lang is not None and lang in LANGUAGES else DEFAULT_LANGUAGE


def format_date(moment: date, lang: str) -> str:
    """`15 marca 2026` in Polish, `15 March 2026` in any other language: the day as given (the caller
    chooses the time zone)."""
    months = MONTHS["pl"] if lang == "pl" else MONTHS["en"]
    return f"{moment.day} {months[moment.month - 1]} {moment.year}"


def translate(polish: Mapping[str, str], text: str, lang: str, /, **values: object) -> str:
    """`text` (English) in `lang`, from the catalogue `polish`; a text it lacks stays English.
    `values` fill the `{placeholders}` after translation."""
    translated = polish.get(text, text) if lang == "pl" else text
    return translated.format(**values) if values else translated
