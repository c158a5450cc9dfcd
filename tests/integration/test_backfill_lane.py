"""Backfills never starve live events: a running issuer worker on the real broker takes a live completion
while a backlog waits on `moodle.events.backfill`, and a completion that comes on both lanes is one
credential; a running renderer renders a live certificate while the backfill's certificates wait on
`certificates.render.backfill`.

The assertions are about the order of outcomes (which awards were saved after which), not about times.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow
from ebackpack.bootstrap import build, prepare
from ebackpack.config import SAMPLE_DIR, Settings
from ebackpack.dev.sample_data import load_profiles, synthetic_learner
from ebackpack.dev.workers import Worker
from ebackpack.domain.rules import load_rules
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import (
    CREDENTIALS,
    MOODLE_EVENTS,
    MOODLE_EVENTS_BACKFILL,
    RENDER_REQUESTS,
    RENDER_REQUESTS_BACKFILL,
)
from schemas.moodle import Profiles
from services.gateway.profiles import store_profiles
from services.issuer.service import IssuerService
from tests.builders import completion, wait_for

pytestmark = pytest.mark.integration
RULES = load_rules(SAMPLE_DIR / "rules.toml")
COURSE = min(r.course_id for r in RULES.rules if not r.certificate)  # badges only: no renderer needed
CERTIFICATE_COURSE = min(r.course_id for r in RULES.rules if r.certificate)
WHEN = datetime(2025, 6, 2, tzinfo=UTC)
BACKLOG = 3000  # historical completions, one learner each
LIVE = BACKLOG + 1  # the live completion's learner (index of synthetic_learner)
BOTH_EARLY, BOTH_LATE = 0, BACKLOG - 1  # learners whose completion comes on both lanes


@pytest.fixture
def issuer(settings: Settings) -> Iterator[tuple[Settings, sessionmaker[Session], Worker]]:
    settings = settings.model_copy(update={"backfill_render_backlog": 0})
    sessions = prepare(settings)
    learners = [synthetic_learner(i) for i in range(LIVE + 1)]
    store_profiles(sessions, Profiles(users=learners, courses=load_profiles().courses))
    worker = Worker("issuer", settings)
    try:
        yield settings, sessions, worker
    finally:
        worker.stop()


def produce(settings: Settings, topic: str, values: Sequence[tuple[int | str, bytes]]) -> None:
    """(key, message) in order, each acknowledged: Moodle events keyed by learner id as the gateway keys
    them, render requests by credential id as the issuer keys them."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            futures = [
                await producer.send(settings.topic(topic), value=value, key=str(key).encode())
                for key, value in values
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(send())


def of(index: int) -> tuple[int, bytes]:
    learner = synthetic_learner(index).id
    return learner, completion(learner, COURSE, WHEN)


def award_count(sessions: sessionmaker[Session], learners: list[int] | None = None) -> int:
    query = select(func.count()).select_from(AwardRow).where(AwardRow.course_id == COURSE)
    if learners is not None:
        query = query.where(AwardRow.learner_id.in_(learners))
    with sessions() as s:
        return int(s.scalar(query) or 0)


def saved_at(sessions: sessionmaker[Session], learner: int) -> datetime | None:
    """When the learner's award was saved, if it was."""
    with sessions() as s:
        return s.scalar(
            select(AwardRow.created_at).where(AwardRow.learner_id == learner, AwardRow.course_id == COURSE)
        )


def test_a_live_completion_is_issued_before_the_backfill_backlog_is_drained_and_once_on_both_lanes(
    issuer: tuple[Settings, sessionmaker[Session], Worker],
) -> None:
    settings, sessions, worker = issuer
    history = [of(i) for i in range(BACKLOG)]
    produce(settings, MOODLE_EVENTS_BACKFILL, history)  # the backlog is there before the issuer starts
    worker.start()
    backfilled = [learner for learner, _v in history]
    wait_for(lambda: award_count(sessions, backfilled) > 0, 120, "the backfill to begin", [worker])

    # Live: a new learner's completion, and two completions the backfill also carries, one of them
    # at the head of its backlog (issued already, most likely) and one at its tail (not yet).
    live_learner = synthetic_learner(LIVE).id
    produce(settings, MOODLE_EVENTS, [of(LIVE), of(BOTH_EARLY), of(BOTH_LATE)])

    wait_for(lambda: saved_at(sessions, live_learner), 120, "the live completion's award", [worker])
    wait_for(lambda: award_count(sessions) == BACKLOG + 1, 300, "the backlog to drain", [worker])

    live_saved = saved_at(sessions, live_learner)
    with sessions() as s:
        after_live = s.scalar(
            select(func.count())
            .select_from(AwardRow)
            .where(
                AwardRow.course_id == COURSE,
                AwardRow.created_at > live_saved,
                AwardRow.learner_id.in_(backfilled),
            )
        )
    # The live completion did not wait for the backlog: a good part of it was issued after it.
    assert after_live and after_live >= BACKLOG // 10, f"only {after_live} backfill awards after the live one"

    # One credential per learner and rule whichever lane brought the completion, and one issued event each.
    both = [synthetic_learner(BOTH_EARLY).id, synthetic_learner(BOTH_LATE).id]
    assert award_count(sessions, both) == 2
    issued: dict[int, set[str]] = {}
    origins: dict[int, str] = {}  # learner -> `origin` of their credential.issued event
    for record in read_topics(settings, [settings.topic(CREDENTIALS)], idle_ms=1000):
        data = json.loads(record.value).get("data", {})
        if data.get("learner_id") in both and data.get("course_id") == COURSE and "reason" not in data:
            issued.setdefault(data["learner_id"], set()).add(data["credential_id"])
        if data.get("course_id") == COURSE and "origin" in data:
            origins[data["learner_id"]] = data["origin"]
    assert {learner: len(ids) for learner, ids in issued.items()} == {both[0]: 1, both[1]: 1}
    # Each event says which lane awarded it: the live completion's `live`, the backfill's `backfill`.
    assert (origins[live_learner], origins[backfilled[1]]) == ("live", "backfill")


RENDER_BACKLOG = 160  # the backfill's certificates waiting for the renderer (20 batches of 8)


def render_requests(
    issuer: IssuerService, learners: range, render_topic: str
) -> list[tuple[int | str, bytes]]:
    """(credential id, render request) of each learner's certificate, awarded on the given lane."""
    raws = [completion(synthetic_learner(i).id, CERTIFICATE_COURSE, WHEN) for i in learners]
    events = issuer.handle_batch(raws, render_topic=render_topic).events
    return [(e.credential_id, e.payload.encode()) for e in events if e.topic.endswith(render_topic)]


def rendered_at(sessions: sessionmaker[Session], credential_id: str) -> datetime | None:
    with sessions() as s:
        return s.scalar(
            select(CertificateRow.rendered_at).where(CertificateRow.credential_id == credential_id)
        )


def rendered_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(CertificateRow)) or 0)


def test_a_live_certificate_is_rendered_before_the_backfills_certificates(
    issuer: tuple[Settings, sessionmaker[Session], Worker],
) -> None:
    settings, sessions, _issuer_worker = issuer
    awarding = IssuerService.from_platform(build(settings))
    history = render_requests(awarding, range(RENDER_BACKLOG), RENDER_REQUESTS_BACKFILL)
    ((live, live_request),) = render_requests(awarding, range(LIVE, LIVE + 1), RENDER_REQUESTS)
    live_id = str(live)
    assert len(history) == RENDER_BACKLOG
    produce(settings, RENDER_REQUESTS_BACKFILL, history)  # there before the renderer starts
    renderer = Worker("renderer", settings)
    renderer.start()
    try:
        wait_for(lambda: rendered_count(sessions) > 0, 180, "the backfill's first certificates", [renderer])
        produce(settings, RENDER_REQUESTS, [(live_id, live_request)])

        wait_for(lambda: rendered_at(sessions, live_id), 120, "the live certificate", [renderer])
        wait_for(
            lambda: rendered_count(sessions) == RENDER_BACKLOG + 1,
            600,
            "the backfill's certificates",
            [renderer],
        )
    finally:
        renderer.stop()

    live_at = rendered_at(sessions, live_id)
    with sessions() as s:
        after_live = s.scalar(
            select(func.count()).select_from(CertificateRow).where(CertificateRow.rendered_at > live_at)
        )
    # The live certificate waited for one backfill batch at most, not for the backfill's queue.
    assert after_live and after_live >= RENDER_BACKLOG // 4, (
        f"only {after_live} backfill PDFs after the live one"
    )
