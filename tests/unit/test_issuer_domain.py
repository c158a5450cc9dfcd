"""The issuer's pure core: which events earn what, with which identity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ebackpack.config import SAMPLE_DIR
from ebackpack.domain.rules import load_rules
from schemas import MoodleEvent, deterministic_id
from services.issuer.domain import (
    CODE_ALPHABET,
    NotALearnerCompletion,
    credential_id,
    decide_award,
    learner_completion,
    verification_code,
)
from tests.conftest import MOODLE_FIXTURES

FIXTURES = MOODLE_FIXTURES
SECRET = b"test secret of this deployment"
RULES = load_rules(SAMPLE_DIR / "rules.toml")


def fixture(name: str) -> MoodleEvent:
    if not FIXTURES.exists():
        pytest.skip("shared Moodle fixtures not present")
    return MoodleEvent.model_validate(json.loads((FIXTURES / name).read_text()))


@pytest.mark.parametrize(
    "name", ["observer-course_completed.moodle45.json", "observer-course_completed.moodle51.json"]
)
def test_course_completed_is_a_completion_of_the_related_user_not_the_actor(name: str) -> None:
    event = fixture(name)
    learner, course = learner_completion(event)
    assert learner == event.relateduserid and course == 42
    if name.endswith("45.json"):
        assert event.userid != learner  # the cron user ran it: still the learner's award


@pytest.mark.parametrize(
    "name",
    [
        "observer-course_completion_updated.json",
        "observer-course_module_completion_updated.json",
        "observer-user_deleted.json",
    ],
)
def test_other_events_are_not_completions(name: str) -> None:
    with pytest.raises(NotALearnerCompletion):
        learner_completion(fixture(name))


def test_same_learner_and_rule_give_the_same_credential_id_and_code() -> None:
    event = fixture("observer-course_completed.moodle45.json")
    first = decide_award(event, "event-1", RULES, "site", SECRET)
    again = decide_award(
        event.model_copy(update={"timecreated": event.timecreated + 99}), "event-2", RULES, "site", SECRET
    )
    assert first.credential_id == again.credential_id
    assert first.verification_code == again.verification_code
    alice = credential_id("site", 5721, "python-basics", SECRET)
    assert alice != credential_id("site", 5722, "python-basics", SECRET)
    assert alice != credential_id("other", 5721, "python-basics", SECRET)


def test_a_credential_id_does_not_give_the_moodle_user_id_back() -> None:
    """The id is in every signed credential and PDF: trying every user id against a public formula (the
    UUIDv5 of site, learner and rule it once was) finds nothing; only the installation's secret does."""
    event = fixture("observer-course_completed.moodle45.json")
    award = decide_award(event, "event-1", RULES, "site", SECRET)
    guesses = {
        deterministic_id(kind, "site", learner, award.rule.id)
        for kind in ("credential", "learner")
        for learner in range(20_000)
    }
    assert award.credential_id not in guesses
    assert award.learner_id < 20_000
    assert (
        credential_id("site", award.learner_id, award.rule.id, b"another deployment's secret")
        != award.credential_id
    )


def test_verification_codes_avoid_look_alike_characters() -> None:
    codes = {verification_code(credential_id("s", n, "r", SECRET), SECRET) for n in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        groups = code.split("-")
        assert [len(g) for g in groups] == [4, 4, 4]
        assert set("".join(groups)) <= set(CODE_ALPHABET)
    assert not set("0O1IL5S2Z8BU") & set(CODE_ALPHABET)


def test_a_verification_code_needs_the_secret_not_just_the_credential_id() -> None:
    cid = credential_id("moodle.example.org", 5721, "python-basics", SECRET)
    assert verification_code(cid, SECRET) == verification_code(cid, SECRET)
    assert verification_code(cid, SECRET) != verification_code(cid, b"another deployment's secret")


def test_a_course_without_a_rule_earns_nothing() -> None:
    event = fixture("observer-course_completed.moodle45.json").model_copy(update={"courseid": 99})
    with pytest.raises(NotALearnerCompletion, match="no award rule"):
        decide_award(event, "e", RULES, "site", SECRET)


def test_a_rules_file_with_two_rules_for_one_course_is_rejected(tmp_path: Path) -> None:
    text = (SAMPLE_DIR / "rules.toml").read_text(encoding="utf-8").replace("course_id = 43", "course_id = 42")
    (tmp_path / "rules.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="one rule"):
        load_rules(tmp_path / "rules.toml")
