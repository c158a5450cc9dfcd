"""`ebackpack gateway import` as an operator runs it: a JSONL export of Moodle's log table in, the used
events on `moodle.events.backfill` out (the history's lane: nothing of it on the live `moodle.events`), a
second run publishing nothing again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import MOODLE_EVENTS, MOODLE_EVENTS_BACKFILL
from schemas import MoodleEventMessage

pytestmark = pytest.mark.e2e
ROWS = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "moodle" / "logstore-rows.jsonl"


def environment(settings: Settings) -> dict[str, str]:
    keys = (
        "data_dir",
        "database_url",
        "kafka_bootstrap",
        "topic_prefix",
        "s3_endpoint",
        "s3_bucket",
        "site_id",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("EBACKPACK_")}
    return (
        env
        | {f"EBACKPACK_{k.upper()}": str(getattr(settings, k)) for k in keys}
        | {
            "EBACKPACK_EMBEDDED": "false",
            "EBACKPACK_S3_SECRET_KEY": settings.s3_secret_key,
            "EBACKPACK_CODE_SECRET": settings.code_secret.get_secret_value() if settings.code_secret else "",
        }
    )


def test_importing_an_export_publishes_each_used_event_once(settings: Settings, tmp_path: Path) -> None:
    prepare(settings)
    export = tmp_path / "log.jsonl"
    export.write_text(ROWS.read_text() + "this line is not a row\n")
    command = [sys.executable, "-m", "ebackpack.cli", "gateway", "import", str(export)]

    first = subprocess.run(command, env=environment(settings), capture_output=True, text=True, timeout=120)
    second = subprocess.run(command, env=environment(settings), capture_output=True, text=True, timeout=120)

    assert first.returncode == 0, first.stderr
    assert "1 lines could not be read" in first.stderr and "line" in first.stderr
    expected = [
        r
        for r in map(json.loads, ROWS.read_text().splitlines())
        if r["eventname"] in ("\\core\\event\\course_completed", "\\core\\event\\user_deleted")
    ]
    published = [
        MoodleEventMessage.model_validate_json(r.value)
        for r in read_topics(settings, [settings.topic(MOODLE_EVENTS_BACKFILL)], idle_ms=500)
    ]
    assert sorted(m.data.objectid or 0 for m in published) == sorted(r["objectid"] or 0 for r in expected)
    assert read_topics(settings, [settings.topic(MOODLE_EVENTS)], idle_ms=500) == []  # live lane left free
    assert second.returncode == 0, second.stderr
    assert len(read_topics(settings, [settings.topic(MOODLE_EVENTS_BACKFILL)], idle_ms=500)) == len(published)
