"""The issuer's pure core: which Moodle events are learner completions, and what award they earn.

No Kafka, no database: plain functions over pydantic models.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from ebackpack.domain.rules import AwardRule, RuleBook
from schemas import keyed_id
from schemas.credentials import LIVE, Origin
from schemas.moodle import COURSE_COMPLETED, MoodleEvent

# Crockford-like alphabet without look-alikes (no 0/O, 1/I/L, U, 5/S, 2/Z, 8/B).
CODE_ALPHABET = "34679ACDEFGHJKMNPQRTVWXY"
CODE_LENGTH = 12


class NotALearnerCompletion(Exception):
    """The event is valid but earns nothing (a decoy): skip it, it is not an error."""


@dataclass(frozen=True)
class Award:
    credential_id: str
    verification_code: str
    learner_id: int
    course_id: int
    rule: AwardRule
    issued_on: datetime
    source_event_id: str
    origin: Origin = LIVE  # the lane the completion came on: `backfill` for history


def learner_completion(event: MoodleEvent) -> tuple[int, int]:
    """(learner, course) of a course completion; `course_completion_updated` is a settings change."""
    if event.eventname != COURSE_COMPLETED:
        raise NotALearnerCompletion(f"{event.eventname} is not a course completion")
    if event.relateduserid is None or event.relateduserid <= 0:
        raise NotALearnerCompletion("course_completed without a learner (relateduserid)")
    return event.relateduserid, event.courseid


def credential_id(site: str, learner_id: int, rule_id: str, secret: bytes) -> str:
    """Same site + learner + rule = same credential, however often the completion arrives. Keyed with the
    installation's secret: the id is inside every signed credential and PDF, and a plain hash of a Moodle
    user id would give the user id back to anyone who tries them all. (Awards saved before ids were keyed
    keep their ids: the issuer finds them by learner and rule too.)"""
    return keyed_id(secret, "credential", site, learner_id, rule_id)


def verification_code(credential: str, secret: bytes) -> str:
    """Human-readable code, grouped `XXXX-XXXX-XXXX`, keyed with the site's secret.

    Deterministic (same credential, same code), but not computable from the credential id alone: the
    id derives from Moodle user ids, and the code opens a page with the learner's name.
    """
    number = int.from_bytes(hmac.digest(secret, credential.encode(), "sha256")[:16], "big")
    chars = []
    for _ in range(CODE_LENGTH):
        number, digit = divmod(number, len(CODE_ALPHABET))
        chars.append(CODE_ALPHABET[digit])
    code = "".join(chars)
    return "-".join(code[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def decide_award(
    event: MoodleEvent,
    event_id: str,
    rules: RuleBook,
    site: str,
    code_secret: bytes,
    origin: Origin = LIVE,
) -> Award:
    learner, course = learner_completion(event)
    rule = rules.for_course(course)
    if rule is None:
        raise NotALearnerCompletion(f"no award rule for course {course}")
    cid = credential_id(site, learner, rule.id, code_secret)
    return Award(
        credential_id=cid,
        verification_code=verification_code(cid, code_secret),
        learner_id=learner,
        course_id=course,
        rule=rule,
        issued_on=datetime.fromtimestamp(event.completed_at, UTC),
        source_event_id=event_id,
        origin=origin,
    )
