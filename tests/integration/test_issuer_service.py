"""The issuer's service layer on real databases (SQLite and PostgreSQL): idempotent awards + outbox."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from ebackpack.adapters.persistence.engine import make_engine, migrate, session_factory
from ebackpack.adapters.persistence.tables import AwardRow
from ebackpack.config import SAMPLE_DIR, Settings
from ebackpack.dev.sample_data import default_dataset
from ebackpack.domain.rules import load_rules
from ebackpack.streaming.errors import InvalidMessage
from schemas import CertificateRenderRequestMessage, CredentialIssuedMessage, MoodleEventMessage
from services.gateway.profiles import store_profiles
from services.issuer.service import IssuerService

pytestmark = pytest.mark.integration


@pytest.fixture
def service(database_url: str, tmp_path) -> IssuerService:
    migrate(database_url)
    migrate(database_url)  # idempotent
    sessions = session_factory(make_engine(database_url))
    store_profiles(sessions, default_dataset().profiles)
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    return IssuerService(sessions, load_rules(SAMPLE_DIR / "rules.toml"), settings)


def completions() -> list[bytes]:
    dataset = default_dataset()
    out = []
    for _key, value in dataset.messages:
        try:
            message = MoodleEventMessage.model_validate_json(value)
        except ValueError:
            continue
        if message.data.eventname.endswith("course_completed") and message.data.courseid in (42, 43):
            out.append(value)
    return out


def awards(service: IssuerService) -> list[AwardRow]:
    with service.sessions() as s:
        return list(s.query(AwardRow).all())


def test_a_completion_saves_one_award_and_two_announcements(service: IssuerService) -> None:
    raw = completions()[0]
    events = service.handle(raw)
    assert [e.topic for e in events] == ["credentials", "certificates.render"]
    issued = CredentialIssuedMessage.model_validate_json(events[0].payload)
    request = CertificateRenderRequestMessage.model_validate_json(events[1].payload)
    assert issued.data.credential_id == request.data.credential_id
    assert request.data.learner_name and request.data.verify_url.endswith(issued.data.verification_code)
    assert len(awards(service)) == 1


def test_redelivery_before_announcing_returns_the_same_events_and_saves_nothing_new(service) -> None:
    raw = completions()[0]
    first = service.handle(raw)
    again = service.handle(raw)  # crashed before announcing: the redelivered message repairs it
    assert [e.event_id for e in again] == [e.event_id for e in first]
    service.mark_sent([e.event_id for e in again])
    assert service.handle(raw) == []  # announced: nothing left to send
    assert len(awards(service)) == 1


def test_unsent_events_are_found_by_the_relay(service: IssuerService) -> None:
    service.handle(completions()[0])
    assert len(service.stale_events(older_than_seconds=-1)) == 2
    assert service.stale_events(older_than_seconds=3600) == []


def test_malformed_bytes_are_rejected_as_invalid(service: IssuerService) -> None:
    for raw in [b"\x00\xff", b"[1, 2]", b'{"specversion": "1.0"}']:
        with pytest.raises(InvalidMessage):
            service.handle(raw)
    assert awards(service) == []


def test_a_learner_without_a_profile_is_parked_and_saves_no_award(service) -> None:
    message = MoodleEventMessage.model_validate_json(completions()[0])
    data = message.data.model_copy(update={"relateduserid": 999999})
    raw = message.model_copy(update={"data": data}).model_dump_json().encode()
    assert service.handle(raw) == []  # not an error: parked until the profile arrives
    assert awards(service) == [] and service.parked_count() == 1


def test_a_batch_saves_what_it_can_and_reports_poison_and_missing_profiles(service: IssuerService) -> None:
    good = completions()[:3]
    message = MoodleEventMessage.model_validate_json(good[0])
    stranger = (
        message.model_copy(
            update={"id": "no-profile", "data": message.data.model_copy(update={"relateduserid": 999999})}
        )
        .model_dump_json()
        .encode()
    )
    batch = [good[0], b"\x00 not json", stranger, good[1], good[0], good[2]]  # good[0] redelivered

    result = service.handle_batch(batch)

    assert [i for i, _ in result.invalid] == [1]
    assert result.parked == [2] and service.parked_count() == 1
    saved = awards(service)
    assert len(saved) == 3 and 999999 not in {a.learner_id for a in saved}
    issued = [
        CredentialIssuedMessage.model_validate_json(e.payload)
        for e in result.events
        if e.topic.endswith("credentials")
    ]
    assert sorted(i.data.credential_id for i in issued) == sorted(a.credential_id for a in saved)
    # the whole batch again (a redelivery after a crash): nothing new, the same unsent events
    again = service.handle_batch(batch)
    assert len(awards(service)) == 3
    assert sorted(e.event_id for e in again.events) == sorted(e.event_id for e in result.events)


def test_an_award_saved_under_an_earlier_id_is_found_by_learner_and_rule(
    service: IssuerService, tmp_path
) -> None:
    """Awards saved before credential ids were keyed keep their ids: a redelivered completion, whose id
    is now derived otherwise, finds the award by learner and rule and issues nothing twice."""
    raw = completions()[0]
    first = service.handle(raw)
    secret = SecretStr("another way of deriving ids " * 2)
    settings = service.settings.model_copy(update={"code_secret": secret, "data_dir": tmp_path / "later"})
    later = IssuerService(service.sessions, service.rules, settings)
    again = later.handle(raw)
    assert len(awards(service)) == 1
    assert sorted(e.event_id for e in again) == sorted(e.event_id for e in first)  # still unsent ones
    assert later.handle_batch([raw, completions()[1]]).events  # the other one is new
    assert len(awards(service)) == 2
