"""A log-store row (or export line) whose numbers no Moodle database holds, or that cannot become a message,
is a dead letter with its reason, like any malformed row: it neither stops the import or poll nor is
published. Real components: the embedded broker, SQLite for the ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import MOODLE_EVENTS
from services.gateway.logstore.poller import LogStorePoller
from services.gateway.publisher import MoodleEventPublisher
from tests.conftest import MOODLE_FIXTURES

pytestmark = pytest.mark.integration


def completion_row() -> dict[str, Any]:
    rows = map(json.loads, (MOODLE_FIXTURES / "logstore-rows.jsonl").read_text().splitlines())
    return next(r for r in rows if r["eventname"] == "\\core\\event\\course_completed")


def test_impossible_rows_are_dead_letters_and_the_rest_is_published(
    settings: Settings, tmp_path: Path
) -> None:
    sessions = prepare(settings)
    good = completion_row()
    rows = [
        good,
        {**good, "id": good["id"] + 1, "timecreated": 10**12},
        {**good, "id": good["id"] + 2, "relateduserid": 2**64},
        {**good, "id": good["id"] + 3, "other": json.dumps({"note": "\ud800"})},
    ]
    export = tmp_path / "log.jsonl"
    export.write_text("".join(json.dumps(row) + "\n" for row in rows))
    publisher = MoodleEventPublisher(settings)
    try:
        result = LogStorePoller(settings, sessions, publisher).import_file(export)
    finally:
        publisher.close()
    assert (result.read, result.published) == (4, 1)
    reasons = {letter.line or 0: letter.reason for letter in result.dead_letters}
    assert sorted(reasons) == [2, 3, 4], reasons
    assert "timecreated" in reasons[2] and "relateduserid" in reasons[3]
    assert "cannot be published" in reasons[4]
    assert len(read_topics(settings, [settings.topic(MOODLE_EVENTS)], idle_ms=500)) == 1
