"""Test data built from the sample data set, and waiting for a pipeline to produce something."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import httpx
from kafka.admin import KafkaAdminClient

from ebackpack.adapters.persistence.engine import make_engine, migrate, session_factory
from ebackpack.adapters.persistence.tables import OutboxRow
from ebackpack.config import SAMPLE_DIR, Settings
from ebackpack.dev.sample_data import default_dataset
from ebackpack.dev.workers import Worker
from ebackpack.domain.rules import load_rules
from ebackpack.streaming.errors import InvalidMessage
from schemas import MoodleEventMessage
from schemas.moodle import USER_DELETED, MoodleEvent
from services.gateway.profiles import store_profiles
from services.issuer.service import IssuerService

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


def user_deleted_event(learner: int, at: int, other: dict[str, str] | None = None) -> MoodleEvent:
    """Moodle's user_deleted for `learner` at unix time `at`, as an administrator (user 2) logs it."""
    return MoodleEvent(
        eventname=USER_DELETED,
        component="core",
        action="deleted",
        target="user",
        objecttable="user",
        objectid=learner,
        crud="d",
        edulevel=0,
        contextid=4410,
        contextlevel=30,
        contextinstanceid=learner,
        userid=2,
        courseid=0,
        relateduserid=learner,
        other=other,
        timecreated=at,
    )


def committed(settings: Settings, group: str, topic: str) -> int:
    """The offsets consumer group `group` (unprefixed) has committed on `topic`, summed over partitions."""
    group = settings.topic(group)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap.split(","))
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == settings.topic(topic))


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stops a process started in a session of its own, with its children: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


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


def wait_until_healthy(process: subprocess.Popen[bytes], url: str, log: Path, seconds: float = 60) -> None:
    """Until the server `process` started answers 200 on `url`/healthz; fails with its log's tail if it
    exits or does not answer in time."""
    deadline = time.monotonic() + seconds
    while True:
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"the server did not answer {url}/healthz in {seconds:.0f} s"
        time.sleep(0.1)


def sample_issued(
    settings: Settings, on_events: Callable[[list[OutboxRow]], None] | None = None
) -> IssuerService:
    """The sample Moodle events issued by the issuer's service layer on `settings`' database (migrated
    first), without a broker; `on_events` sees the outbox rows of each event that earned something."""
    migrate(settings.db_url)
    sessions = session_factory(make_engine(settings.db_url))
    store_profiles(sessions, default_dataset().profiles)
    service = IssuerService(sessions, load_rules(SAMPLE_DIR / "rules.toml"), settings)
    for _key, value in default_dataset().messages:
        try:
            rows = service.handle(value)
        except InvalidMessage:
            continue  # the sample's malformed messages
        if on_events is not None:
            on_events(rows)
    return service


def loopback_settings(data_dir: Path, port: int, **extra: object) -> Settings:
    """SQLite in `data_dir`, the web app on 127.0.0.1:`port` as its public address."""
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'ebackpack.db'}",
        http_port=port,
        public_url=f"http://127.0.0.1:{port}",
        **extra,  # type: ignore[arg-type]
    )
