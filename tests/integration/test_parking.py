"""Completions that must wait for a profile are parked per learner, in order, and hold no one else up;
tombstones on `moodle.users` are no dead letters.

Service level on SQLite and PostgreSQL; then a running issuer worker on the real broker: two learners
without profiles ahead of an unrelated learner on the same partition of `moodle.events`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.persistence.engine import make_engine, migrate, session_factory
from ebackpack.adapters.persistence.tables import AwardRow, Learner, ParkedMessageRow
from ebackpack.bootstrap import prepare
from ebackpack.config import SAMPLE_DIR, Settings
from ebackpack.dev.sample_data import load_profiles, synthetic_learner
from ebackpack.dev.workers import Worker
from ebackpack.domain.rules import load_rules
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import CREDENTIALS, MOODLE_EVENTS, MOODLE_USERS, dlq
from schemas import CredentialIssuedMessage, DeadLetterMessage, MoodleUserMessage, deterministic_id
from schemas.moodle import USER_DELETED, LearnerProfile, MoodleEvent, Profiles
from services.gateway.events import moodle_message
from services.gateway.profiles import store_profiles
from services.issuer.service import IssuerService
from tests.builders import committed, completion, wait_for
from tests.conftest import MOODLE_FIXTURES

pytestmark = pytest.mark.integration
RULES = load_rules(SAMPLE_DIR / "rules.toml")
CERTIFICATE_COURSES = [r.course_id for r in RULES.rules if r.certificate]
COURSES = sorted({r.course_id for r in RULES.rules})
WHEN = datetime(2026, 3, 2, tzinfo=UTC)
PARTITION = 1  # every message of the worker test goes to this partition of `moodle.events`
UNBLOCKED_WITHIN = 5.0  # seconds: the unrelated learner's award, two parked learners ahead of it


def awards_of(sessions: sessionmaker[Session], learner: int) -> list[tuple[int, datetime]]:
    with sessions() as s:
        return [
            (course, created)
            for course, created in s.execute(
                select(AwardRow.course_id, AwardRow.created_at)
                .where(AwardRow.learner_id == learner)
                .order_by(AwardRow.created_at)
            )
        ]


# --- the service ---------------------------------------------------------------------------------------


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> IssuerService:
    migrate(database_url)
    sessions = session_factory(make_engine(database_url))
    store_profiles(sessions, Profiles(users=[], courses=load_profiles().courses))
    return IssuerService(sessions, RULES, Settings(data_dir=tmp_path, database_url=database_url))


def test_a_learner_with_parked_messages_keeps_their_order_and_others_flow(service: IssuerService) -> None:
    waiting, other = synthetic_learner(9001), synthetic_learner(9002)
    store_profiles(service.sessions, Profiles(users=[other], courses=[]))
    first, second = COURSES[0], COURSES[1]

    result = service.handle_batch([completion(waiting.id, first, WHEN), completion(other.id, first, WHEN)])
    assert result.parked == [0] and len(awards_of(service.sessions, other.id)) == 1

    # The profile came by another route (no profile message): the learner's next completion still
    # waits behind the parked one, so the two are issued in the order they happened.
    store_profiles(service.sessions, Profiles(users=[waiting], courses=[]))
    assert service.handle_batch([completion(waiting.id, second, WHEN)]).parked == [0]
    assert awards_of(service.sessions, waiting.id) == [] and service.parked_count() == 2

    events = service.resume_parked()  # the issuer's timer
    assert [course for course, _ in awards_of(service.sessions, waiting.id)] == [first, second]
    issued = [
        CredentialIssuedMessage.model_validate_json(e.payload)
        for e in events
        if e.topic.endswith(CREDENTIALS)
    ]
    assert [i.data.course_id for i in issued] == [first, second]
    assert service.parked_count() == 0 and service.resume_parked() == []
    # redelivered after resuming: nothing new
    service.handle_batch([completion(waiting.id, first, WHEN)])
    assert len(awards_of(service.sessions, waiting.id)) == 2


def test_a_certificate_waits_for_its_course_profile(database_url: str, tmp_path: Path) -> None:
    migrate(database_url)
    sessions = session_factory(make_engine(database_url))
    learner = synthetic_learner(9003)
    store_profiles(sessions, Profiles(users=[learner], courses=[]))  # no course profile yet
    service = IssuerService(sessions, RULES, Settings(data_dir=tmp_path, database_url=database_url))
    course = CERTIFICATE_COURSES[0]
    assert service.handle_batch([completion(learner.id, course, WHEN)]).parked == [0]
    assert service.resume_parked(course_id=course) == []  # still missing
    profile = [c for c in load_profiles().courses if c.id == course]
    store_profiles(sessions, Profiles(users=[], courses=profile))
    events = service.resume_parked(course_id=course)
    assert {e.topic.rsplit(".", 1)[-1] for e in events} >= {"render"} and service.parked_count() == 0


def test_a_parked_backfill_completion_is_issued_as_one(service: IssuerService) -> None:
    """The lane is kept with the parked row: the credential issued on resuming says `origin: backfill`."""
    learner = synthetic_learner(9005)
    raw = completion(learner.id, COURSES[0], WHEN)
    assert service.handle_batch([raw], ["moodle.events.backfill/0/1"], origin="backfill").parked == [0]

    store_profiles(service.sessions, Profiles(users=[learner], courses=[]))

    events = service.resume_parked({learner.id})
    (issued,) = [
        CredentialIssuedMessage.model_validate_json(e.payload)
        for e in events
        if e.topic.endswith(CREDENTIALS)
    ]
    assert issued.data.origin == "backfill"


def test_erasure_drops_the_learners_parked_messages(service: IssuerService) -> None:
    gone = synthetic_learner(9004)
    service.handle_batch([completion(gone.id, COURSES[0], WHEN)])
    assert service.parked_count() == 1
    deleted = MoodleEvent(
        eventname=USER_DELETED,
        component="core",
        action="deleted",
        target="user",
        crud="d",
        edulevel=0,
        contextid=1,
        contextlevel=30,
        contextinstanceid=gone.id,
        userid=2,
        courseid=0,
        relateduserid=gone.id,
        timecreated=int(WHEN.timestamp()),
    )
    _id, (_key, raw) = moodle_message("test-site", deleted)
    service.handle_batch([raw])
    store_profiles(service.sessions, Profiles(users=[gone], courses=[]))  # had it come late after all
    assert service.parked_count() == 0 and service.resume_parked() == []
    assert awards_of(service.sessions, gone.id) == []


# --- a running issuer ----------------------------------------------------------------------------------


@pytest.fixture
def issuer(settings: Settings) -> Iterator[tuple[Settings, sessionmaker[Session], Worker]]:
    sessions = prepare(settings)
    store_profiles(sessions, Profiles(users=[], courses=load_profiles().courses))
    worker = Worker("issuer", settings)
    worker.start()
    try:
        yield settings, sessions, worker
    finally:
        worker.stop()


def produce(settings: Settings, records: list[tuple[str, int | None, bytes, bytes | None]]) -> None:
    """(topic, partition, key, value) in order, each acknowledged; value None is a tombstone."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for topic, partition, key, value in records:
                await producer.send_and_wait(settings.topic(topic), value=value, key=key, partition=partition)
        finally:
            await producer.stop()

    asyncio.run(send())


def user_profile(learner: LearnerProfile) -> bytes:
    now = datetime.now(UTC)
    return MoodleUserMessage.build(
        id=deterministic_id("moodle.user", "test", learner.id, now.isoformat()),
        source="moodle://test",
        subject=str(learner.id),
        time=now,
        data=learner,
    ).to_bytes()


def dead_letters(settings: Settings) -> list[DeadLetterMessage]:
    return [
        DeadLetterMessage.model_validate_json(r.value)
        for r in read_topics(settings, [settings.topic(dlq(MOODLE_EVENTS))], idle_ms=1000)
    ]


def issued_courses(settings: Settings, learner: int) -> list[int]:
    """The courses of this learner's credential-issued events, in the order of the topic."""
    found = []
    for record in read_topics(settings, [settings.topic(CREDENTIALS)], idle_ms=1000):
        data = json.loads(record.value).get("data", {})
        if data.get("learner_id") == learner and "verification_code" in data and "reason" not in data:
            found.append(data["course_id"])
    return found


def test_parked_learners_do_not_delay_an_unrelated_learner_on_the_same_partition(
    issuer: tuple[Settings, sessionmaker[Session], Worker],
) -> None:
    settings, sessions, worker = issuer
    early, late, unrelated = synthetic_learner(9101), synthetic_learner(9102), synthetic_learner(9103)
    store_profiles(sessions, Profiles(users=[unrelated], courses=[]))
    first, second = COURSES[0], COURSES[1]

    # The worker is up and consuming: an award for the unrelated learner comes through.
    produce(
        settings,
        [(MOODLE_EVENTS, PARTITION, str(unrelated.id).encode(), completion(unrelated.id, first, WHEN))],
    )
    wait_for(lambda: awards_of(sessions, unrelated.id), 120, "the issuer's first award", [worker])

    # Two learners without profiles (the early one twice), then the unrelated learner: one partition.
    produce(
        settings,
        [
            (MOODLE_EVENTS, PARTITION, str(early.id).encode(), completion(early.id, first, WHEN)),
            (MOODLE_EVENTS, PARTITION, str(early.id).encode(), completion(early.id, second, WHEN)),
            (MOODLE_EVENTS, PARTITION, str(late.id).encode(), completion(late.id, first, WHEN)),
        ],
    )
    time.sleep(0.5)  # the next completion arrives in a later batch, as it would from Moodle
    published = time.monotonic()
    produce(
        settings,
        [(MOODLE_EVENTS, PARTITION, str(unrelated.id).encode(), completion(unrelated.id, second, WHEN))],
    )
    wait_for(
        lambda: len(awards_of(sessions, unrelated.id)) == 2, 180, "the unrelated learner's award", [worker]
    )
    delay = time.monotonic() - published
    print(f"unrelated learner's award {delay:.2f} s after publishing, two parked learners ahead of it")
    assert delay < UNBLOCKED_WITHIN, f"the unrelated learner waited {delay:.1f} s behind parked learners"
    assert awards_of(sessions, early.id) == [] and awards_of(sessions, late.id) == []

    # The missing profiles arrive: the parked completions are issued, exactly once, in order.
    arrived = time.monotonic()
    produce(settings, [(MOODLE_USERS, None, str(p.id).encode(), user_profile(p)) for p in (late, early)])
    wait_for(
        lambda: len(awards_of(sessions, early.id)) == 2 and len(awards_of(sessions, late.id)) == 1,
        60,
        "the parked completions issued",
        [worker],
    )
    print(f"parked completions issued {time.monotonic() - arrived:.2f} s after their profiles were published")
    wait_for(
        lambda: issued_courses(settings, early.id) == [first, second],
        30,
        "the early learner's two credentials announced in order",
        [worker],
    )
    assert issued_courses(settings, late.id) == [first]
    assert [c for c, _ in awards_of(sessions, early.id)] == [first, second]

    # A profile that comes by another route (written to the database, no profile message): the timer.
    other_route = synthetic_learner(9104)
    produce(
        settings,
        [(MOODLE_EVENTS, PARTITION, str(other_route.id).encode(), completion(other_route.id, first, WHEN))],
    )
    wait_for(lambda: service_parked(sessions) == 1, 30, "the completion parked", [worker])
    store_profiles(sessions, Profiles(users=[other_route], courses=[]))
    wait_for(lambda: awards_of(sessions, other_route.id), 60, "the timer to resume it", [worker])
    assert service_parked(sessions) == 0 and dead_letters(settings) == []


def service_parked(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(ParkedMessageRow)) or 0


def test_a_deleted_moodle_user_is_erased_without_a_dead_letter(
    issuer: tuple[Settings, sessionmaker[Session], Worker],
) -> None:
    """What the gateway publishes when Moodle deletes a user (the captured Moodle 4.4 event): the
    user_deleted event on `moodle.events` and a tombstone (no value) on `moodle.users`."""
    settings, sessions, worker = issuer
    raw = json.loads((MOODLE_FIXTURES / "real-4.4" / "observer-user_deleted-1.json").read_text())
    event = MoodleEvent.model_validate(raw)
    learner = event.relateduserid
    assert learner is not None
    profile = LearnerProfile(id=learner, firstname="Ewa", lastname="Nowak", email="ewa@example.org")
    produce(settings, [(MOODLE_USERS, None, str(learner).encode(), user_profile(profile))])
    wait_for(lambda: _learner_stored(sessions, learner), 120, "the learner's profile stored", [worker])

    _id, (key, value) = moodle_message(settings.site_id, event)
    users_before = committed(settings, settings.issuer_group, MOODLE_USERS)
    produce(
        settings,
        [(MOODLE_EVENTS, None, key or b"", value), (MOODLE_USERS, None, str(learner).encode(), None)],
    )
    wait_for(
        lambda: (
            committed(settings, settings.issuer_group, MOODLE_USERS) >= users_before + 1
            and not _learner_stored(sessions, learner)
        ),
        60,
        "the tombstone consumed and the learner erased",
        [worker],
    )
    letters = dead_letters(settings)
    assert letters == [], [(d.data.topic, d.data.reason) for d in letters]


def _learner_stored(sessions: sessionmaker[Session], learner: int) -> bool:
    with sessions() as s:
        return s.get(Learner, learner) is not None
