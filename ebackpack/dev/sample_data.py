"""Deterministic Moodle event data sets for the demo, the tests and the benchmarks.

The messages are what the gateway publishes to `moodle.events`: CloudEvents envelopes around the
observer payload, mixing the Moodle 4.5 shape (ints, deprecated `other.relateduserid`) and the 5.1
shape (numbers as strings from the PHP DB driver, `other` null), plus redeliveries, events that must not
award anything, and malformed values that consumers must dead-letter.
"""

from __future__ import annotations

import json
import math
import random
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from schemas.envelope import deterministic_id
from schemas.moodle import (
    COURSE_COMPLETED,
    COURSE_COMPLETION_UPDATED,
    EVENT_FIELDS,
    MODULE_COMPLETION_UPDATED,
    USER_GRADED,
    LearnerProfile,
    MoodleEventMessage,
    Profiles,
)

DEFAULT_SITE = "moodle.example.org"
DEFAULT_EVENTS = 30

# Share of each kind in percent (integers, so the split of N messages is exact and platform-independent).
SHARES: dict[str, int] = {
    "completion": 45,
    "completion_no_rule": 5,
    "duplicate_completion": 5,
    "completion_updated": 10,
    "module_completion": 15,
    "user_graded": 10,
    "malformed": 10,
}
KINDS: tuple[str, ...] = tuple(SHARES)

CRON_USER = 2  # Moodle's admin user, who runs the scheduled completion task.
TEACHERS = (311, 312, 318)
SYNTHETIC_FIRST_ID = 100_000
START_TIME = 1768201200  # 2026-01-12 07:00 UTC

# Top-level fields a PHP DB driver hands over as strings (as in the Moodle 5.1 observer fixture).
_STRINGLY = ("objectid", "contextid", "contextinstanceid", "userid", "courseid", "relateduserid")

# Fields fixed by the event class (`lib/classes/event/*.php`).
_TEMPLATES: dict[str, dict[str, Any]] = {
    COURSE_COMPLETED: {
        "action": "completed",
        "target": "course",
        "objecttable": "course_completions",
        "crud": "u",
        "edulevel": 2,
        "contextlevel": 50,
    },
    COURSE_COMPLETION_UPDATED: {
        "action": "updated",
        "target": "course_completion",
        "objecttable": None,
        "crud": "u",
        "edulevel": 1,
        "contextlevel": 50,
    },
    MODULE_COMPLETION_UPDATED: {
        "action": "updated",
        "target": "course_module_completion",
        "objecttable": "course_modules_completion",
        "crud": "u",
        "edulevel": 2,
        "contextlevel": 70,
    },
    USER_GRADED: {
        "action": "graded",
        "target": "user",
        "objecttable": "grade_grades",
        "crud": "u",
        "edulevel": 2,
        "contextlevel": 50,
    },
}


Message = tuple[bytes | None, bytes]  # (key, value) on `moodle.events`


@dataclass(frozen=True)
class Dataset:
    profiles: Profiles
    messages: list[Message]
    expected_awards: frozenset[tuple[int, int]]
    kinds: dict[str, int]


def _sample_text(name: str) -> str:
    return resources.files("ebackpack.dev").joinpath("sample", name).read_text(encoding="utf-8")


def load_profiles() -> Profiles:
    return Profiles.model_validate_json(_sample_text("profiles.json"))


def rule_course_ids() -> list[int]:
    """Courses that award something, from the bundled rules.toml."""
    rules = tomllib.loads(_sample_text("rules.toml"))["rules"]
    return sorted({int(rule["course_id"]) for rule in rules})


def default_dataset() -> Dataset:
    return generate(DEFAULT_EVENTS, seed=0)


def kind_counts(events: int) -> dict[str, int]:
    """Split `events` by SHARES with the largest-remainder method: the counts always sum to `events`."""
    counts = {kind: events * pct // 100 for kind, pct in SHARES.items()}
    by_remainder = sorted(KINDS, key=lambda k: (-(events * SHARES[k] % 100), KINDS.index(k)))
    for kind in by_remainder[: events - sum(counts.values())]:
        counts[kind] += 1
    if counts["completion"] == 0:  # nothing to redeliver
        counts["completion"], counts["duplicate_completion"] = counts["duplicate_completion"], 0
    return counts


def generate(events: int, seed: int = 0, *, site: str = DEFAULT_SITE) -> Dataset:
    if events < 0:
        raise ValueError("events must be >= 0")
    rng = random.Random(seed)
    counts = kind_counts(events)
    bundled = load_profiles()
    rule_courses = rule_course_ids()
    other_courses = [c.id for c in bundled.courses if c.id not in rule_courses]
    learners = _learner_pool(bundled.users, counts, len(rule_courses), len(other_courses))
    learner_ids = [u.id for u in learners]
    writer = _Writer(rng, site, events)
    slots = _base_slots(rng, counts, learner_ids, rule_courses, other_courses)
    rendered = [writer.render(kind, learner, course) for kind, learner, course in slots]
    messages = _with_redeliveries(rng, rendered, slots, counts["duplicate_completion"])
    awards = frozenset((learner, course) for kind, learner, course in slots if kind == "completion")
    return Dataset(Profiles(users=learners, courses=bundled.courses), messages, awards, counts)


def _learner_pool(
    bundled: list[LearnerProfile], counts: dict[str, int], n_rule: int, n_other: int
) -> list[LearnerProfile]:
    # Moodle fires course_completed once per learner and course: enough learners for distinct pairs,
    # with some slack so not every learner completes every course.
    needed = math.ceil(1.25 * counts["completion"] / n_rule)
    if counts["completion_no_rule"]:
        if not n_other:
            raise ValueError("the bundled profiles have no course without a rule")
        needed = max(needed, math.ceil(counts["completion_no_rule"] / n_other))
    extra = max(0, needed - len(bundled))
    return list(bundled) + [synthetic_learner(i) for i in range(extra)]


def _distinct_pairs(
    rng: random.Random, learners: list[int], courses: list[int], k: int
) -> list[tuple[int, int]]:
    picks = rng.sample(range(len(learners) * len(courses)), k)
    return [(learners[p // len(courses)], courses[p % len(courses)]) for p in picks]


def _base_slots(
    rng: random.Random,
    counts: dict[str, int],
    learners: list[int],
    rule_courses: list[int],
    other_courses: list[int],
) -> list[tuple[str, int, int]]:
    """(kind, learner, course) of every message except redeliveries, in publishing order."""
    every_course = rule_courses + other_courses
    slots = [
        ("completion", lc[0], lc[1])
        for lc in _distinct_pairs(rng, learners, rule_courses, counts["completion"])
    ]
    slots += [
        ("completion_no_rule", lc[0], lc[1])
        for lc in _distinct_pairs(rng, learners, other_courses, counts["completion_no_rule"])
    ]
    for kind in ("completion_updated", "module_completion", "user_graded", "malformed"):
        slots += [(kind, rng.choice(learners), rng.choice(every_course)) for _ in range(counts[kind])]
    rng.shuffle(slots)
    return slots


def _with_redeliveries(
    rng: random.Random, rendered: list[Message], slots: list[tuple[str, int, int]], duplicates: int
) -> list[Message]:
    """Re-send some completions byte for byte (same envelope id), each some time after its original."""
    originals = [i for i, slot in enumerate(slots) if slot[0] == "completion"]
    chosen = rng.sample(originals, duplicates)  # kind_counts keeps duplicates <= completions
    order = [(float(i), i) for i in range(len(rendered))]
    order += [(rng.uniform(i + 0.5, len(rendered)), i) for i in chosen]
    order.sort()
    return [rendered[i] for _, i in order]


class _Writer:
    """Renders one message per slot; owns the clock and the Moodle row-id counters."""

    def __init__(self, rng: random.Random, site: str, events: int) -> None:
        self.rng = rng
        self.site = site
        self.now = START_TIME + rng.randrange(3600)
        # Spread large sets over months of 2026, not years.
        self.max_step = max(2, min(600, 20_000_000 // max(events, 1)))
        self.row_ids = {COURSE_COMPLETED: 9000, MODULE_COMPLETION_UPDATED: 77000, USER_GRADED: 301000}
        self.malformed_seen = 0

    def render(self, kind: str, learner: int, course: int) -> Message:
        self.now += self.rng.randint(1, self.max_step)
        if kind in ("completion", "completion_no_rule"):
            return _encode(self._envelope(self._course_completed(learner, course)))
        if kind == "completion_updated":
            return _encode(self._envelope(self._completion_updated(course)))
        if kind == "module_completion":
            return _encode(self._envelope(self._module_completion(learner, course)))
        if kind == "user_graded":
            return _encode(self._envelope(self._user_graded(learner, course)))
        if kind == "malformed":
            return self._malformed(learner, course)
        raise ValueError(f"unknown kind {kind!r}")

    def _next_row_id(self, eventname: str) -> int:
        self.row_ids[eventname] += self.rng.randint(1, 7)
        return self.row_ids[eventname]

    def _event(
        self, eventname: str, *, ids: Mapping[str, int | None], other: Any, modern: bool
    ) -> dict[str, Any]:
        event: dict[str, Any] = {"eventname": eventname, "component": "core", **_TEMPLATES[eventname]}
        event.update(ids)
        event |= {"anonymous": 0, "other": other, "timecreated": self.now}
        if modern:  # Moodle 5.1 through a driver that returns strings
            event |= {f: str(event[f]) for f in _STRINGLY if event.get(f) is not None}
        return {f: event[f] for f in EVENT_FIELDS}

    def _course_completed(self, learner: int, course: int) -> dict[str, Any]:
        modern = self.rng.random() < 0.5
        actor = learner if self.rng.random() < 0.5 else CRON_USER
        ids = {
            "objectid": self._next_row_id(COURSE_COMPLETED),
            **_course_context(course),
            "userid": actor,
            "courseid": course,
            "relateduserid": learner,
        }
        other = None if modern else {"relateduserid": learner}
        return self._event(COURSE_COMPLETED, ids=ids, other=other, modern=modern)

    def _completion_updated(self, course: int) -> dict[str, Any]:
        # A teacher saved the course's completion settings: about no learner.
        ids = {
            "objectid": None,
            **_course_context(course),
            "userid": self.rng.choice(TEACHERS),
            "courseid": course,
            "relateduserid": None,
        }
        return self._event(COURSE_COMPLETION_UPDATED, ids=ids, other=None, modern=self.rng.random() < 0.5)

    def _module_completion(self, learner: int, course: int) -> dict[str, Any]:
        cmid = course * 9 + self.rng.randint(1, 10)
        overrideby = self.rng.choice(TEACHERS) if self.rng.random() < 0.1 else None
        state = self.rng.choices([0, 1, 2, 3, 4], weights=[1, 4, 3, 1, 1])[0]
        ids = {
            "objectid": self._next_row_id(MODULE_COMPLETION_UPDATED),
            "contextid": cmid + 815,
            "contextinstanceid": cmid,
            "userid": overrideby or learner,
            "courseid": course,
            "relateduserid": learner,
        }
        other = {"relateduserid": learner, "overrideby": overrideby, "completionstate": state}
        return self._event(MODULE_COMPLETION_UPDATED, ids=ids, other=other, modern=self.rng.random() < 0.5)

    def _user_graded(self, learner: int, course: int) -> dict[str, Any]:
        grader = self.rng.choice(TEACHERS) if self.rng.random() < 0.75 else CRON_USER
        ids = {
            "objectid": self._next_row_id(USER_GRADED),
            **_course_context(course),
            "userid": grader,
            "courseid": course,
            "relateduserid": learner,
        }
        other = {
            "itemid": course * 120 + self.rng.randint(0, 9),
            "overridden": self.rng.random() < 0.1,
            "finalgrade": self.rng.randint(0, 1000) / 10,
        }
        return self._event(USER_GRADED, ids=ids, other=other, modern=self.rng.random() < 0.5)

    def _envelope(self, event: dict[str, Any]) -> dict[str, Any]:
        learner = _opt_int(event["relateduserid"])
        event_id = deterministic_id(
            self.site, event["eventname"], _opt_int(event["objectid"]), learner, event["timecreated"]
        )
        when = datetime.fromtimestamp(event["timecreated"], UTC).isoformat().replace("+00:00", "Z")
        return {
            "specversion": "1.0",
            "id": event_id,
            "source": f"moodle://{self.site}",
            "type": MoodleEventMessage.TYPE,
            "time": when,
            "subject": None if learner is None else str(learner),
            "datacontenttype": "application/json",
            "data": event,
        }

    def _malformed(self, learner: int, course: int) -> Message:
        # Cycle through the variants so even a small data set holds several different ones.
        variant = self.malformed_seen % 5
        self.malformed_seen += 1
        envelope = self._envelope(self._course_completed(learner, course))
        key = str(learner).encode("ascii")
        if variant == 0:  # not JSON: cut off in transit, an HTML error page, binary junk
            whole = _encode(envelope)[1]
            junk = [
                whole[: len(whole) // 2],
                b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                b"\xff\xfe\x00\x01 not json",
            ]
            return None, self.rng.choice(junk)
        if variant == 1:
            envelope["data"]["courseid"] = "forty-two"
        elif variant == 2:
            for field in self.rng.choice([("courseid",), ("courseid", "contextid"), ("timecreated",)]):
                del envelope["data"][field]
        elif variant == 3:  # JSON, but not an object
            not_objects = [b"[]", b"null", b"42", b'"course_completed"', b'[{"courseid": 42}]']
            return None, self.rng.choice(not_objects)
        else:
            envelope["type"] = self.rng.choice(["pl.ebackpack.moodle.event.v2", "org.moodle.webhook.event"])
        return key, _dumps(envelope)


def _course_context(course: int) -> dict[str, int]:
    return {"contextid": course + 1145, "contextinstanceid": course}  # course 42 -> context 1187


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _encode(envelope: dict[str, Any]) -> Message:
    """Keyed by learner (`relateduserid`), else by whoever triggered the event."""
    data = envelope["data"]
    owner = data["relateduserid"] if data["relateduserid"] is not None else data["userid"]
    return str(owner).encode("ascii"), _dumps(envelope)


# Synthetic learners for data sets larger than the bundled profiles can cover.
_PL_FEMALE = (
    "Agnieszka",
    "Małgorzata",
    "Żaneta",
    "Jadwiga",
    "Bożena",
    "Urszula",
    "Gabriela",
    "Katarzyna",
    "Weronika",
    "Jolanta",
)
_PL_MALE = (
    "Łukasz",
    "Paweł",
    "Michał",
    "Wojciech",
    "Stanisław",
    "Jędrzej",
    "Zbigniew",
    "Piotr",
    "Kacper",
    "Bartłomiej",
)
_PL_SURNAMES = (
    ("Wiśniewski", "Wiśniewska"),
    ("Kamiński", "Kamińska"),
    ("Wójcik", "Wójcik"),
    ("Lewandowski", "Lewandowska"),
    ("Zieliński", "Zielińska"),
    ("Woźniak", "Woźniak"),
    ("Kozłowski", "Kozłowska"),
    ("Jabłoński", "Jabłońska"),
    ("Król", "Król"),
    ("Stępień", "Stępień"),
    ("Małecki", "Małecka"),
    ("Żak", "Żak"),
    ("Zając", "Zając"),
    ("Pająk", "Pająk"),
    ("Głowacki", "Głowacka"),
    ("Gąsiorowski", "Gąsiorowska"),
    ("Szczęsny", "Szczęsna"),
)
_EN_FIRST = (
    "Emily",
    "Oliver",
    "Zoë",
    "Siobhán",
    "Chloë",
    "Noah",
    "Amelia",
    "Renée",
    "Seán",
    "Harriet",
    "Thomas",
)
_EN_SURNAMES = (
    "Smith",
    "O'Brien",
    "Brontë",
    "Johnson",
    "Taylor",
    "Davies",
    "Evans",
    "Hughes",
    "MacDonald",
    "Walker",
    "Wright",
    "Nguyen",
    "Ní Bhriain",
)
_ASCII_FOLD = str.maketrans({"ł": "l", "Ł": "L"})  # NFKD does not decompose the Polish ł


def synthetic_learner(index: int) -> LearnerProfile:
    """The `index`-th synthetic learner: the same index always gives the same person."""
    if index % 3 == 2:
        first = _EN_FIRST[index * 7 % len(_EN_FIRST)]
        last = _EN_SURNAMES[(index * 5 + index // len(_EN_FIRST)) % len(_EN_SURNAMES)]
        lang = "pl" if index % 11 == 0 else "en"
    else:
        female = index % 2 == 0
        first = (_PL_FEMALE if female else _PL_MALE)[index * 7 % 10]
        last = _PL_SURNAMES[(index * 5 + index // 10) % len(_PL_SURNAMES)][1 if female else 0]
        lang = "en" if index % 13 == 0 else "pl"
    uid = SYNTHETIC_FIRST_ID + index
    email = f"{_ascii_slug(first)}.{_ascii_slug(last)}.{uid}@example.org"
    return LearnerProfile(id=uid, firstname=first, lastname=last, email=email, lang=lang)


def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.translate(_ASCII_FOLD))
    return "".join(c for c in folded if c.isascii() and c.isalnum()).lower()
