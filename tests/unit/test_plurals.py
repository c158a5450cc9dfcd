"""CLDR plural categories of Polish and English, and the nouns the certificates and e-mails print."""

from __future__ import annotations

import pytest

from ebackpack.plurals import DAYS, ECTS_CREDITS, HOURS, category, format_number, quantity
from services.notifier.domain import days_phrase


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("1", "one"),
        ("2", "few"),
        ("3", "few"),
        ("4", "few"),
        ("22", "few"),
        ("23", "few"),
        ("24", "few"),
        ("102", "few"),
        ("1004", "few"),
        ("0", "many"),
        ("5", "many"),
        ("11", "many"),
        ("12", "many"),
        ("13", "many"),
        ("14", "many"),
        ("21", "many"),
        ("25", "many"),
        ("101", "many"),
        ("112", "many"),
        ("114", "many"),
        ("1,5", "other"),
        ("0,5", "other"),
        ("2,25", "other"),
        ("1,0", "other"),  # as written: v = 1
    ],
)
def test_polish_categories(number: str, expected: str) -> None:
    assert category(number, "pl") == expected


@pytest.mark.parametrize(
    ("number", "expected"),
    [("1", "one"), ("0", "other"), ("2", "other"), ("1.5", "other"), ("21", "other"), ("101", "other")],
)
def test_english_categories(number: str, expected: str) -> None:
    assert category(number, "en") == expected


@pytest.mark.parametrize(
    ("value", "pl", "en"),
    [
        (1, "1 godzina", "1 hour"),
        (2, "2 godziny", "2 hours"),
        (5, "5 godzin", "5 hours"),
        (12, "12 godzin", "12 hours"),
        (22, "22 godziny", "22 hours"),
        (25, "25 godzin", "25 hours"),
        (1.5, "1,5 godziny", "1.5 hours"),
        (1.0, "1 godzina", "1 hour"),
        (0.25, "0,25 godziny", "0.25 hours"),
    ],
)
def test_hours(value: float, pl: str, en: str) -> None:
    assert quantity(value, HOURS, "pl") == pl and quantity(value, HOURS, "en") == en


def test_ects_credits_and_days() -> None:
    assert quantity(1, ECTS_CREDITS, "en") == "1 ECTS credit"
    assert quantity(2.5, ECTS_CREDITS, "en") == "2.5 ECTS credits"
    assert quantity(2.5, ECTS_CREDITS, "pl") == "2,5 pkt ECTS"
    assert quantity(1.5, DAYS, "pl") == "1,5 dnia"
    assert [days_phrase(n, "pl") for n in (1, 2, 5, 22)] == ["1 dzień", "2 dni", "5 dni", "22 dni"]
    assert [days_phrase(n, "en") for n in (1, 2)] == ["1 day", "2 days"]


def test_numbers_are_written_in_the_languages_notation() -> None:
    assert [format_number(v, "pl") for v in (2, 2.0, 2.5, 0.125, 1.10)] == ["2", "2", "2,5", "0,13", "1,1"]
    assert format_number(2.5, "en") == "2.5"
