"""The Moodle models accept what real Moodle sites emit (hand-checked fixtures in ../shared)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import MoodleEvent, MoodleLogRow
from schemas.moodle import COURSE_COMPLETED, COURSE_COMPLETION_UPDATED, decode_other
from tests.conftest import MOODLE_FIXTURES

FIXTURES = MOODLE_FIXTURES
pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason="Moodle fixtures not available")

OBSERVER_FILES = sorted(FIXTURES.glob("observer-*.json"))
EVENT_FIELDS = set(MoodleEvent.model_fields)


def observer(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"observer-{name}.json").read_text(encoding="utf-8"))
    return data


def log_rows() -> list[dict[str, Any]]:
    lines = (FIXTURES / "logstore-rows.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def row(row_id: int) -> MoodleLogRow:
    return next(MoodleLogRow.model_validate(r) for r in log_rows() if r["id"] == row_id)


def test_there_are_fixtures() -> None:
    assert len(OBSERVER_FILES) >= 5 and log_rows()


@pytest.mark.parametrize("path", OBSERVER_FILES, ids=lambda p: p.name)
def test_every_observer_payload_parses(path: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    event = MoodleEvent.model_validate(raw)
    assert event.eventname == raw["eventname"]
    assert event.courseid == int(raw["courseid"])


def test_moodle45_and_51_course_completed_agree_on_the_learner() -> None:
    old, new = (
        MoodleEvent.model_validate(observer("course_completed.moodle45")),
        MoodleEvent.model_validate(observer("course_completed.moodle51")),
    )
    assert old.eventname == new.eventname == COURSE_COMPLETED
    assert (old.userid, old.learner_id, old.other) == (2, 5721, {"relateduserid": 5721})  # cron user ran it
    assert (new.userid, new.learner_id, new.other) == (5722, 5722, None)


def test_string_numbers_are_coerced() -> None:
    event = MoodleEvent.model_validate(observer("course_completed.moodle51"))
    assert (event.objectid, event.contextid, event.contextinstanceid, event.courseid) == (9132, 1187, 42, 42)
    assert all(isinstance(v, int) for v in (event.objectid, event.userid, event.relateduserid))


def test_words_are_not_numbers() -> None:
    with pytest.raises(ValidationError):
        MoodleEvent.model_validate(observer("course_completed.moodle45") | {"courseid": "forty-two"})


def test_completion_settings_update_has_no_learner() -> None:
    event = MoodleEvent.model_validate(observer("course_completion_updated"))
    assert event.eventname == COURSE_COMPLETION_UPDATED and event.learner_id is None


def test_every_log_row_parses() -> None:
    rows = log_rows()
    parsed = [MoodleLogRow.model_validate(r) for r in rows]
    assert [p.id for p in parsed] == [r["id"] for r in rows]
    assert all(p.other is None or isinstance(p.other, dict | list) for p in parsed)


@pytest.mark.parametrize(
    ("row_id", "expected"),
    [
        (880411, {"relateduserid": 5721, "overrideby": None, "completionstate": 2}),  # PHP serialize
        (880413, {"relateduserid": 5721}),  # PHP serialize
        (880412, {"itemid": 5120, "overridden": False, "finalgrade": 87.5}),  # JSON
        (880420, None),  # PHP `N;`
        (880431, None),  # JSON `null`
    ],
)
def test_log_row_other_is_decoded(row_id: int, expected: Any) -> None:
    assert row(row_id).other == expected


@pytest.mark.parametrize(
    ("row_id", "name"),
    [
        (880411, "course_module_completion_updated"),
        (880413, "course_completed.moodle45"),
        (880420, "course_completion_updated"),
        (880431, "course_completed.moodle51"),
    ],
)
def test_log_row_and_observer_payload_give_the_same_event(row_id: int, name: str) -> None:
    from_log = row(row_id).model_dump(include=EVENT_FIELDS)
    from_observer = MoodleEvent.model_validate(observer(name)).model_dump()
    assert from_log == from_observer


def test_php_and_json_encodings_decode_alike() -> None:
    # PHP string lengths count UTF-8 bytes: "żb" is 3.
    php = 'a:3:{s:13:"relateduserid";i:57;s:5:"items";a:2:{i:0;s:1:"a";i:1;s:3:"żb";}s:4:"none";N;}'
    as_json = '{"relateduserid": 57, "items": ["a", "żb"], "none": null}'
    expected = {"relateduserid": 57, "items": ["a", "żb"], "none": None}
    assert decode_other(php) == decode_other(as_json) == expected
