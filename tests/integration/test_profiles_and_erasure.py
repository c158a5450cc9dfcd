"""Profiles from a real Moodle database through the compacted topics into the issuer's view; the
completion date from `course_completions.timecompleted`; and the right to erasure on `user_deleted`.

Real components: PostgreSQL holding Moodle's user / course / course_completions tables (the columns we
read), the embedded Tansu broker, SeaweedFS, and the issuer's service layer on SQLite; the renderer's and
the importer's erasures act on the issuer's `learner.erased` as their workers do (test_erasure.py runs
the workers).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from ebackpack.adapters.persistence.tables import (
    AttestationRow,
    AwardRow,
    CertificateRow,
    Learner,
    OutboxRow,
    SignedCredentialRow,
)
from ebackpack.adapters.storage import ObjectStore
from ebackpack.bootstrap import prepare
from ebackpack.config import SAMPLE_DIR, Settings
from ebackpack.domain.rules import load_rules
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import LEARNERS_ERASED, MOODLE_COURSES, MOODLE_USERS
from schemas import LearnerErased, LearnerErasedMessage
from schemas.moodle import COURSE_COMPLETED, MoodleEvent
from services.backpack.verification import verify
from services.gateway.events import moodle_message
from services.gateway.profiles import MoodleDatabase, ProfilePublisher, ProfileSync
from services.importer.erasure import AttestationErasure
from services.issuer.service import IssuerService
from services.renderer.erasure import CertificateErasure
from tests.builders import user_deleted_event
from tests.integration.moodle_stand_in import Site, WebServices, moodle_database, serving

pytestmark = pytest.mark.integration
RULES = load_rules(SAMPLE_DIR / "rules.toml")
COURSE = next(r.course_id for r in RULES.rules if r.certificate)
LEARNER = 8101
COMPLETED = int(datetime(2026, 5, 4, 10, 30, tzinfo=UTC).timestamp())  # timecompleted
LOGGED = COMPLETED + 3 * 86400  # the cron run that logged the event, days later


@pytest.fixture
def moodle(postgres_url: str) -> Any:
    engine = moodle_database(
        postgres_url,
        Site(
            users=[(LEARNER, "Zofia", "Wiśniewska", "zofia@example.org", "pl")],
            courses=[(COURSE, "Pierwsza pomoc przedmedyczna", "PP")],
            completions=[(9901, LEARNER, COURSE, COMPLETED)],
        ),
    )
    yield engine
    engine.dispose()


def completion() -> MoodleEvent:
    return MoodleEvent(
        eventname=COURSE_COMPLETED,
        component="core",
        action="completed",
        target="course",
        objecttable="course_completions",
        objectid=9901,
        crud="u",
        edulevel=2,
        contextid=COURSE + 1145,
        contextlevel=50,
        contextinstanceid=COURSE,
        userid=2,
        courseid=COURSE,
        relateduserid=LEARNER,
        timecreated=LOGGED,
    )


def deletion() -> MoodleEvent:
    return user_deleted_event(LEARNER, LOGGED + 60, {"username": "zosia", "email": "zofia@example.org"})


def deliver(settings: Settings, issuer: IssuerService) -> None:
    """What the issuer worker does with the profile topics."""
    for topic, kind in ((MOODLE_USERS, "user"), (MOODLE_COURSES, "course")):
        for record in read_topics(settings, [settings.topic(topic)], idle_ms=500):
            issuer.apply_profile(kind, record.key, record.value)


def test_profiles_completion_date_and_erasure(settings: Settings, moodle: Any) -> None:
    sessions = prepare(settings)
    issuer = IssuerService(sessions, RULES, settings)
    publisher = ProfilePublisher(settings)
    sync = ProfileSync(MoodleDatabase(moodle), publisher)

    # The gateway prepares the completion: profiles published first, the completion date filled in.
    (ready,) = sync.prepare([completion()])
    deliver(settings, issuer)
    issuer.handle(moodle_message(settings.site_id, ready)[1][1])

    with sessions() as session:
        learner = session.get(Learner, LEARNER)
        award = session.scalars(select(AwardRow).where(AwardRow.learner_id == LEARNER)).one()
        assert learner is not None and (learner.firstname, learner.lang) == ("Zofia", "pl")
        assert award.issued_on.replace(tzinfo=UTC) == datetime.fromtimestamp(COMPLETED, UTC)
    assert ready.timecompleted == COMPLETED

    # A name change in Moodle reaches the issuer's view for the certificates rendered later.
    with moodle.begin() as connection:
        connection.execute(
            text("UPDATE mdl_user SET lastname = 'Wiśniewska-Kowal' WHERE id = :id"), {"id": LEARNER}
        )
    updated = completion().model_copy(update={"eventname": "\\core\\event\\user_updated"})
    sync.prepare([updated])
    deliver(settings, issuer)
    with sessions() as session:
        learner = session.get(Learner, LEARNER)
        assert learner is not None and learner.lastname == "Wiśniewska-Kowal"

    # Personal data in S3 and in the tables, as the renderer and the importer leave it.
    store = ObjectStore(settings)
    with sessions.begin() as session:
        store.put(f"certificates/{award.credential_id}/x.pdf", b"%PDF- Zofia", "application/pdf")
        store.put(f"attestations/{LEARNER}/a1", b"{}", "application/json")
        session.add(
            CertificateRow(
                credential_id=award.credential_id,
                bucket=settings.s3_bucket,
                object_key=f"certificates/{award.credential_id}/x.pdf",
                sha256="0" * 64,
                size=11,
                rendered_at=datetime.now(UTC),
                template="default",
            )
        )
        session.add(
            AttestationRow(
                id="a1",
                learner_id=LEARNER,
                state="imported",
                object_key=f"attestations/{LEARNER}/a1",
                size=2,
                received_at=datetime.now(UTC),
            )
        )

    # Moodle deletes the user: the gateway redacts the event and tombstones the profile.
    gone = sync.prepare([deletion()])
    _event_id, (_key, value) = moodle_message(settings.site_id, gone[0])
    assert json.loads(value)["data"]["other"] is None  # username and e-mail are not passed on
    issuer.handle(value)
    issuer.handle(value)  # redelivered: nothing left to erase, nothing breaks
    erased = learner_erased(sessions, settings)
    assert erased.learner_id == LEARNER and erased.credential_ids == [award.credential_id]
    for erase in (CertificateErasure(sessions, store), AttestationErasure(sessions, store)):
        erase(erased)
        erase(erased)  # redelivered

    with sessions() as session:
        assert session.get(Learner, LEARNER) is None
        kept = session.scalars(select(AwardRow).where(AwardRow.learner_id == LEARNER)).one()
        assert kept.recipient_hash is None and kept.recipient_salt is None
        assert (
            session.scalars(
                select(SignedCredentialRow).where(SignedCredentialRow.credential_id == kept.credential_id)
            ).all()
            == []
        )
        assert session.get(AttestationRow, "a1") is None
        certificates = select(CertificateRow).where(CertificateRow.credential_id == kept.credential_id)
        assert session.scalars(certificates).all() == []
        public = verify(session, kept.verification_code)
    assert public.status == "valid" and public.learner_name is None and public.achievement
    assert list(store.keys(f"certificates/{award.credential_id}/")) == []
    assert list(store.keys(f"attestations/{LEARNER}/")) == []
    tombstones = [
        r
        for r in read_topics(settings, [settings.topic(MOODLE_USERS)], idle_ms=500)
        if r.key == str(LEARNER).encode() and r.value is None
    ]
    assert tombstones, "the deleted user's profile gets a tombstone on the compacted topic"
    publisher.close()


def learner_erased(sessions: Any, settings: Settings) -> LearnerErased:
    """The issuer's one `learner.erased`, as its relay sends it from the outbox."""
    with sessions() as session:
        query = select(OutboxRow.payload).where(OutboxRow.topic == settings.topic(LEARNERS_ERASED))
        (payload,) = session.scalars(query).all()
    return LearnerErasedMessage.model_validate_json(payload).data


def test_profiles_through_moodle_web_services() -> None:
    """Moodle's REST protocol, served by a recording stand-in on 127.0.0.1."""
    from services.gateway.profiles import MoodleWebServices

    moodle = WebServices(
        Site(users=[(7, "Jan", "Kowalski", "jan@example.org", "pl")], courses=[(42, "Python", "PY")]),
        token="secret-token",
    )
    with serving(moodle) as url:
        services = MoodleWebServices(url, "secret-token", httpx.Client(timeout=5))
        (user,) = services.users([7])
        (course,) = services.courses([42])
        assert (user.firstname, user.lang, course.fullname) == ("Jan", "pl", "Python")
        assert moodle.calls[0]["values[0]"] == ["7"] and moodle.calls[1]["value"] == ["42"]
        with pytest.raises(RuntimeError, match="invalidtoken"):
            MoodleWebServices(url, "wrong", httpx.Client(timeout=5)).users([7])
