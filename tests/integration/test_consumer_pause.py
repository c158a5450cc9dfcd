"""A worker paused on an outage (ebackpack/streaming/policy.py) shows the pause where `ebackpack status` reads
it and commits nothing beyond what it finished, also when it is stopped while paused: the next start
takes the message in hand again. Real broker; a database that is not there, then one that is."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.persistence.tables import Learner
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.sample_data import synthetic_learner
from ebackpack.dev.stack import free_port
from ebackpack.dev.workers import Worker
from ebackpack.streaming.health import paused_streams
from ebackpack.streaming.topics import MOODLE_USERS
from tests.builders import wait_for
from tests.integration.test_parking import produce, user_profile


def stored(sessions: sessionmaker[Session], learner: int) -> bool:
    with sessions() as s:
        return s.get(Learner, learner) is not None


def test_a_worker_stopped_while_paused_commits_nothing_and_the_next_start_takes_the_message_again(
    settings: Settings,
) -> None:
    sessions = prepare(settings)
    learner = synthetic_learner(9201)
    # The issuer's database is away: nothing listens on that port.
    away = settings.model_copy(
        update={"database_url": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/away"}
    )
    paused = Worker("issuer", away)
    paused.start()
    try:
        produce(settings, [(MOODLE_USERS, None, str(learner.id).encode(), user_profile(learner))])
        reported = wait_for(
            lambda: [p for p in paused_streams(settings.data_dir) if p.consumer == "issuer"],
            120,
            "the issuer to report its pause",
            [paused],
        )
        assert reported[0].topic == settings.topic(MOODLE_USERS)
        assert "Connection refused" in reported[0].reason
        assert "paused issuer on" in paused.log_path.read_text()
    finally:
        paused.stop(timeout=5)  # SIGTERM waits for the message in hand (the outage): then SIGKILL
    assert paused_streams(settings.data_dir) == []  # a dead worker is not shown as paused

    # The database is back (the worker's own URL again): the profile, never committed, is taken again.
    restarted = Worker("issuer", settings)
    restarted.start()
    try:
        wait_for(
            lambda: stored(sessions, learner.id), 120, "the profile stored after the restart", [restarted]
        )
    finally:
        restarted.stop()
