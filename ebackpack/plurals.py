"""Numbers with their nouns in Polish and English: `1 godzina, 2 godziny, 5 godzin, 1,5 godziny`.

The plural categories are CLDR's (https://www.unicode.org/cldr/charts/latest/supplemental/
language_plural_rules.html), computed from the number as it is written, so `1,5` and `1` differ:

    pl  one:  i = 1 and v = 0                                 1
        few:  v = 0 and i % 10 = 2..4 and i % 100 != 12..14   2-4, 22-24, 102 …
        many: v = 0 and not one and not few                   0, 5-21, 25-31, 112 …
        other: v != 0 (fractions)                             0,5  1,5  2,25
    en  one:  i = 1 and v = 0; other: everything else

(i: the integer digits, v: how many fraction digits are written.)
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

Category = Literal["one", "few", "many", "other"]
# Written in full per category: Polish needs four forms of most nouns, English two.
HOURS: dict[str, dict[Category, str]] = {
    "pl": {"one": "godzina", "few": "godziny", "many": "godzin", "other": "godziny"},
    "en": {"one": "hour", "few": "hours", "many": "hours", "other": "hours"},
}
ECTS_CREDITS: dict[str, dict[Category, str]] = {
    "pl": {"one": "pkt ECTS", "few": "pkt ECTS", "many": "pkt ECTS", "other": "pkt ECTS"},  # abbreviated
    "en": {"one": "ECTS credit", "few": "ECTS credits", "many": "ECTS credits", "other": "ECTS credits"},
}
DAYS: dict[str, dict[Category, str]] = {
    "pl": {"one": "dzień", "few": "dni", "many": "dni", "other": "dnia"},
    "en": {"one": "day", "few": "days", "many": "days", "other": "days"},
}


def format_number(value: float, lang: str) -> str:
    """`2`, `1.5` / `1,5` (Polish decimal comma), at most two decimals, no trailing zeros."""
    if value == int(value):
        return str(int(value))
    rounded = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)  # 0.125 -> 0.13
    text = f"{rounded:f}".rstrip("0").rstrip(".")
    return text.replace(".", ",") if lang == "pl" else text


def category(number: str, lang: str) -> Category:
    """The CLDR plural category of a number as written (`format_number`'s output)."""
    integer, _, fraction = number.lstrip("-").replace(",", ".").partition(".")
    i, v = int(integer or "0"), len(fraction)
    if lang != "pl":
        return "one" if i == 1 and v == 0 else "other"
    if v:
        return "other"
    if i == 1:
        return "one"
    if 2 <= i % 10 <= 4 and not 12 <= i % 100 <= 14:
        return "few"
    return "many"


def quantity(value: float, forms: dict[str, dict[Category, str]], lang: str) -> str:
    """`5 godzin`, `1 ECTS credit`: the number in the language's notation and the noun that agrees."""
    number = format_number(value, lang)
    return f"{number} {forms[lang if lang in forms else 'en'][category(number, lang)]}"
