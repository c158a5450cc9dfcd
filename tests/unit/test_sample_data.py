"""The generated Moodle data sets are deterministic and hold exactly what they claim to hold."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest
from pydantic import ValidationError

from ebackpack.dev import sample_data
from ebackpack.dev.sample_data import KINDS, Dataset, default_dataset, generate, load_profiles
from schemas import MoodleEventMessage, deterministic_id
from schemas.moodle import COURSE_COMPLETED, COURSE_COMPLETION_UPDATED, MODULE_COMPLETION_UPDATED, USER_GRADED

RULE_COURSES = {42, 43, 44}
NO_RULE_COURSE = 99
OTHER_KINDS = {
    COURSE_COMPLETION_UPDATED: "completion_updated",
    MODULE_COMPLETION_UPDATED: "module_completion",
    USER_GRADED: "user_graded",
}


def parse(value: bytes) -> MoodleEventMessage | None:
    try:
        return MoodleEventMessage.model_validate_json(value)
    except ValidationError:
        return None


@cache
def dataset(events: int, seed: int) -> Dataset:
    return default_dataset() if events == -1 else generate(events, seed)


# The default set, one that is mostly bundled learners, and one that needs synthetic learners.
SIZES = [(-1, 0), (400, 3), (3000, 11)]


def classify(ds: Dataset) -> tuple[Counter[str], set[tuple[int, int]]]:
    """Kind of every message, worked out from the bytes alone; and the pairs of first completions."""
    kinds: Counter[str] = Counter()
    seen: set[str] = set()
    completions: set[tuple[int, int]] = set()
    for _, value in ds.messages:
        message = parse(value)
        if message is None:
            kinds["malformed"] += 1
            continue
        event = message.data
        kind = OTHER_KINDS.get(event.eventname)
        if kind is None:
            assert event.eventname == COURSE_COMPLETED
            if message.id in seen:
                kind = "duplicate_completion"
            elif event.courseid in RULE_COURSES:
                kind = "completion"
                assert event.relateduserid is not None
                completions.add((event.relateduserid, event.courseid))
            else:
                assert event.courseid == NO_RULE_COURSE
                kind = "completion_no_rule"
        seen.add(message.id)
        kinds[kind] += 1
    return kinds, completions


def valid(ds: Dataset) -> list[tuple[bytes | None, MoodleEventMessage]]:
    parsed = [(key, parse(value)) for key, value in ds.messages]
    return [(key, m) for key, m in parsed if m is not None]


def test_default_dataset_has_every_kind() -> None:
    ds = default_dataset()
    assert set(ds.kinds) == set(KINDS)
    assert all(ds.kinds[kind] >= 1 for kind in KINDS), ds.kinds
    assert ds.kinds["completion"] >= 6 and ds.kinds["malformed"] >= 3
    assert 20 <= len(ds.messages) <= 40
    assert ds.profiles == load_profiles()


@pytest.mark.parametrize("events", [0, 1, 2, 3, 7, 30, 101, 1000])
def test_exact_number_of_messages(events: int) -> None:
    ds = generate(events)
    assert len(ds.messages) == events == sum(ds.kinds.values())


def test_shares_are_roughly_as_specified() -> None:
    kinds = generate(1000).kinds
    assert kinds == {
        "completion": 450,
        "completion_no_rule": 50,
        "duplicate_completion": 50,
        "completion_updated": 100,
        "module_completion": 150,
        "user_graded": 100,
        "malformed": 100,
    }


def test_same_seed_same_data_different_seed_different_data() -> None:
    assert generate(300, seed=5) == generate(300, seed=5)
    assert default_dataset() == generate(sample_data.DEFAULT_EVENTS, seed=0)
    assert generate(300, seed=5).messages != generate(300, seed=6).messages
    assert generate(30, seed=1).messages != default_dataset().messages


@pytest.mark.parametrize(("events", "seed"), SIZES)
def test_messages_are_what_kinds_claims(events: int, seed: int) -> None:
    ds = dataset(events, seed)
    kinds, completions = classify(ds)
    assert {k: kinds[k] for k in KINDS} == ds.kinds
    assert completions == set(ds.expected_awards)
    assert len(ds.expected_awards) == ds.kinds["completion"]  # never two completions of one pair


@pytest.mark.parametrize(("events", "seed"), SIZES)
def test_keys_subjects_and_ids(events: int, seed: int) -> None:
    for key, message in valid(dataset(events, seed)):
        event = message.data
        owner = event.relateduserid if event.relateduserid is not None else event.userid
        assert key == str(owner).encode("ascii")
        assert message.subject == (None if event.relateduserid is None else str(event.relateduserid))
        assert message.source == "moodle://moodle.example.org"
        assert message.id == deterministic_id(
            "moodle.example.org", event.eventname, event.objectid, event.relateduserid, event.timecreated
        )


def test_malformed_keys_are_learner_ids_or_none() -> None:
    for key, value in dataset(400, 3).messages:
        if parse(value) is None:
            assert key is None or key.isdigit()


def test_site_goes_into_source_and_id() -> None:
    here, there = generate(20, site="moodle.a.pl"), generate(20, site="moodle.b.pl")
    assert {m.source for _, m in valid(here)} == {"moodle://moodle.a.pl"}
    assert {m.id for _, m in valid(here)}.isdisjoint({m.id for _, m in valid(there)})


@pytest.mark.parametrize(("events", "seed"), SIZES)
def test_redeliveries_repeat_an_earlier_message_byte_for_byte(events: int, seed: int) -> None:
    ds = dataset(events, seed)
    seen: set[bytes] = set()
    repeats = 0
    for _, value in ds.messages:
        message = parse(value)
        if message is None:
            continue  # the same junk (`null`, `[]`) may well come twice: not a redelivery
        if value in seen:
            repeats += 1
            assert message.data.eventname == COURSE_COMPLETED and message.data.courseid in RULE_COURSES
        seen.add(value)
    assert repeats == ds.kinds["duplicate_completion"]


@pytest.mark.parametrize(("events", "seed"), SIZES)
def test_time_increases_through_2026(events: int, seed: int) -> None:
    seen: set[str] = set()
    times = []
    for _, message in valid(dataset(events, seed)):
        if message.id not in seen:
            times.append(message.data.timecreated)
            seen.add(message.id)
        assert message.time == datetime.fromtimestamp(message.data.timecreated, UTC)
    assert times == sorted(times) and len(set(times)) == len(times)
    assert {datetime.fromtimestamp(t, UTC).year for t in times} == {2026}


def raw_events(ds: Dataset) -> list[dict[str, Any]]:
    events = []
    for _, value in ds.messages:
        if parse(value) is not None:
            data: dict[str, Any] = json.loads(value)["data"]
            events.append(data)
    return events


def test_both_moodle_versions_and_both_actors_appear() -> None:
    completed = [e for e in raw_events(dataset(400, 3)) if e["eventname"] == COURSE_COMPLETED]
    moodle45 = [e for e in completed if isinstance(e["courseid"], int)]
    moodle51 = [e for e in completed if isinstance(e["courseid"], str)]
    assert moodle45 and moodle51
    assert all(e["other"] == {"relateduserid": e["relateduserid"]} for e in moodle45)
    assert all(e["other"] is None and isinstance(e["relateduserid"], str) for e in moodle51)
    actors = {int(e["userid"]) == int(e["relateduserid"]) for e in completed}
    assert actors == {True, False}
    assert {int(e["userid"]) for e in completed if int(e["userid"]) != int(e["relateduserid"])} == {2}


def test_other_event_shapes_follow_moodle() -> None:
    events = raw_events(dataset(400, 3))
    updated = [e for e in events if e["eventname"] == COURSE_COMPLETION_UPDATED]
    modules = [e for e in events if e["eventname"] == MODULE_COMPLETION_UPDATED]
    graded = [e for e in events if e["eventname"] == USER_GRADED]
    assert updated and all(e["relateduserid"] is None and e["contextlevel"] == 50 for e in updated)
    assert modules and all(e["contextlevel"] == 70 for e in modules)
    assert all(set(e["other"]) == {"relateduserid", "overrideby", "completionstate"} for e in modules)
    assert graded and all(set(e["other"]) == {"itemid", "overridden", "finalgrade"} for e in graded)


def test_malformed_messages_cover_every_variant() -> None:
    malformed = [value for _, value in dataset(400, 3).messages if parse(value) is None]
    decoded = []
    for value in malformed:
        try:
            decoded.append(json.loads(value))
        except ValueError:
            decoded.append("not json")
    assert "not json" in decoded
    assert any(not isinstance(d, dict) and d != "not json" for d in decoded)
    envelopes = [d for d in decoded if isinstance(d, dict)]
    assert any("courseid" not in d["data"] or "timecreated" not in d["data"] for d in envelopes)
    assert any(d["data"].get("courseid") == "forty-two" for d in envelopes)
    assert any(d["type"] != MoodleEventMessage.TYPE for d in envelopes)


def test_every_learner_in_the_messages_has_a_profile() -> None:
    for events, seed in SIZES:
        ds = dataset(events, seed)
        users = {u.id for u in ds.profiles.users}
        courses = {c.id for c in ds.profiles.courses}
        for _, message in valid(ds):
            assert message.data.courseid in courses
            assert message.data.relateduserid is None or message.data.relateduserid in users


def test_large_sets_get_synthetic_learners() -> None:
    ds = dataset(3000, 11)
    bundled = load_profiles().users
    synthetic = ds.profiles.users[len(bundled) :]
    assert ds.profiles.users[: len(bundled)] == bundled and synthetic
    assert [u.id for u in synthetic] == list(range(100_000, 100_000 + len(synthetic)))
    assert len({u.email for u in ds.profiles.users}) == len(ds.profiles.users)
    assert all(u.email.isascii() for u in synthetic)
    assert {u.lang for u in synthetic} == {"pl", "en"}
    assert any(not u.full_name.isascii() for u in synthetic)
    assert sample_data.synthetic_learner(5) == sample_data.synthetic_learner(5)


def test_kind_counts_always_add_up() -> None:
    for events in range(2000):
        counts = sample_data.kind_counts(events)
        assert sum(counts.values()) == events
        assert counts["duplicate_completion"] <= counts["completion"]
