"""Test data built from the sample data set, and waiting for a pipeline to produce something."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from ebackpack.dev.sample_data import default_dataset
from ebackpack.dev.workers import Worker
from schemas import MoodleEventMessage

T = TypeVar("T")


def completion(learner: int, course: int, when: datetime) -> bytes:
    """A course completion as the gateway publishes it, built from a sample event."""
    for _key, value in default_dataset().messages:
        try:
            message = MoodleEventMessage.model_validate_json(value)
        except ValueError:
            continue
        if message.data.eventname.endswith("course_completed"):
            data = message.data.model_copy(
                update={"relateduserid": learner, "courseid": course, "timecreated": int(when.timestamp())}
            )
            return (
                message.model_copy(update={"id": f"{message.id}-{learner}-{course}", "data": data})
                .model_dump_json()
                .encode()
            )
    raise AssertionError("the sample has no course completion")


def wait_for(check: Callable[[], T | None], seconds: float, what: str, workers: Sequence[Worker] = ()) -> T:
    """Polls `check` until it returns something truthy; fails at once if a worker died meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        for worker in workers:
            assert worker.process is not None and worker.process.poll() is None, (
                f"{worker.name} died while waiting for {what}"
            )
        time.sleep(0.3)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")
