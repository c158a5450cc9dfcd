"""Moodle events as they leave a Moodle site, and the message the gateway publishes to `moodle.events`.

Two shapes arrive: the observer payload (`\\core\\event\\base::get_data()`) and a row of
`mdl_logstore_standard_log` (same fields plus `id`, `origin`, `ip`, `realuserid`, with `other`
PHP-serialized or JSON). Some PHP database drivers send numbers as strings: pydantic's lax mode
turns `"42"` into 42.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

import phpserialize
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .envelope import CloudEvent

COURSE_COMPLETED = "\\core\\event\\course_completed"
COURSE_COMPLETION_UPDATED = "\\core\\event\\course_completion_updated"
MODULE_COMPLETION_UPDATED = "\\core\\event\\course_module_completion_updated"
USER_GRADED = "\\core\\event\\user_graded"
USER_DELETED = "\\core\\event\\user_deleted"

# `\\core\\event\\base::get_data()`, in its order: the observer payload's fields.
EVENT_FIELDS = (
    "eventname",
    "component",
    "action",
    "target",
    "objecttable",
    "objectid",
    "crud",
    "edulevel",
    "contextid",
    "contextlevel",
    "contextinstanceid",
    "userid",
    "courseid",
    "relateduserid",
    "anonymous",
    "other",
    "timecreated",
)
# `{prefix}logstore_standard_log`: the event's fields in the table's column order, and which columns
# are text (every other one is an integer) and which may be NULL.
LOG_COLUMNS = ("id", *EVENT_FIELDS, "origin", "ip", "realuserid")
LOG_TEXT_COLUMNS = frozenset(
    {"eventname", "component", "action", "target", "objecttable", "crud", "other", "origin", "ip"}
)
LOG_INTEGER_COLUMNS = frozenset(LOG_COLUMNS) - LOG_TEXT_COLUMNS
LOG_NULLABLE_COLUMNS = frozenset(
    {"objecttable", "objectid", "courseid", "relateduserid", "other", "origin", "ip", "realuserid"}
)


class MoodleEvent(BaseModel):
    """`\\core\\event\\base::get_data()`: the observer payload (Moodle 4.x and 5.1)."""

    model_config = ConfigDict(extra="ignore")

    eventname: str = Field(min_length=1)
    component: str
    action: str
    target: str
    objecttable: str | None = None
    objectid: int | None = None
    crud: Literal["c", "r", "u", "d"]
    edulevel: int
    contextid: int
    contextlevel: int
    contextinstanceid: int
    userid: int | None = Field(None, description="Who ran the code: learner, teacher or the cron user.")
    courseid: int
    relateduserid: int | None = Field(None, description="The learner the event is about.")
    anonymous: int = 0
    other: dict[str, Any] | list[Any] | None = None
    timecreated: int = Field(ge=0, description="Unix time the event was triggered.")
    timecompleted: int | None = Field(
        None,
        ge=0,
        description=(
            "course_completed only, added by the gateway (not part of Moodle's event data): "
            "`course_completions.timecompleted`, the completion date certificates print."
        ),
    )

    @property
    def learner_id(self) -> int | None:
        return self.relateduserid

    @property
    def completed_at(self) -> int:
        """When the learner completed: `timecompleted` when the gateway knows it, else the event's time."""
        return self.timecompleted or self.timecreated


class MoodleLogRow(MoodleEvent):
    """One row of `mdl_logstore_standard_log`."""

    id: int
    origin: str | None = None
    ip: str | None = None
    realuserid: int | None = None

    @field_validator("other", mode="before")
    @classmethod
    def decode_other(cls, value: Any) -> Any:
        return decode_other(value)


def decode_other(value: Any) -> Any:
    """`other` is PHP `serialize()` output or JSON, depending on the site's log store setting."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text in ("", "N;", "null"):
        return None
    if text[0] in "{[":
        return json.loads(text)
    return _php_to_python(phpserialize.loads(text.encode(), decode_strings=True))


def _php_to_python(value: Any) -> Any:
    if isinstance(value, dict):
        keys = list(value.keys())
        if keys == list(range(len(keys))):
            return [_php_to_python(v) for v in value.values()]
        return {str(k): _php_to_python(v) for k, v in value.items()}
    return value


class MoodleEventMessage(CloudEvent):
    """On `moodle.events`, keyed by learner (`relateduserid`, else `userid`)."""

    TYPE: ClassVar[str] = "pl.ebackpack.moodle.event.v1"
    data: MoodleEvent


class LearnerProfile(BaseModel):
    """A Moodle user as certificates need it (`mdl_user`); on the compacted `moodle.users`."""

    id: int
    firstname: str
    lastname: str
    email: str
    lang: str = "en"

    @property
    def full_name(self) -> str:
        return f"{self.firstname} {self.lastname}"


class CourseProfile(BaseModel):
    """A Moodle course (`mdl_course`); on the compacted `moodle.courses`."""

    id: int
    fullname: str
    shortname: str


class MoodleUserMessage(CloudEvent):
    """On the compacted `moodle.users`, key = Moodle user id; the latest profile wins. A deleted user's key
    gets a tombstone (a null value), so compaction removes the profile from the topic."""

    TYPE: ClassVar[str] = "pl.ebackpack.moodle.user.v1"
    data: LearnerProfile


class MoodleCourseMessage(CloudEvent):
    """On the compacted `moodle.courses`, key = Moodle course id."""

    TYPE: ClassVar[str] = "pl.ebackpack.moodle.course.v1"
    data: CourseProfile


class Profiles(BaseModel):
    """The users/courses file the demo loads (until the gateway reads them from Moodle)."""

    users: list[LearnerProfile]
    courses: list[CourseProfile]
