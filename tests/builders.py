"""Test data built from the sample data set."""

from __future__ import annotations

from datetime import datetime

from ebackpack.sample_data import default_dataset
from schemas import MoodleEventMessage


def completion(learner: int, course: int, when: datetime) -> bytes:
    """A course completion as the gateway publishes it, built from a sample event."""
    for _key, value in default_dataset().messages:
        try:
            message = MoodleEventMessage.model_validate_json(value)
        except ValueError:
            continue
        if message.data.eventname.endswith("course_completed"):
            data = message.data.model_copy(update={"relateduserid": learner, "courseid": course,
                                                   "timecreated": int(when.timestamp())})
            return message.model_copy(update={"id": f"{message.id}-{learner}-{course}", "data": data}) \
                .model_dump_json().encode()
    raise AssertionError("the sample has no course completion")
