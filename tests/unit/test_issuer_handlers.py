"""The issuer's handlers against an in-memory unit of work: awarding, parking and resuming, revocation,
expiry and re-rendering, with no database and no broker. The SQL side of the same use cases is tested
in tests/integration (test_issuer_service, test_parking, test_status_slots)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from pydantic import SecretStr, ValidationError

from ebackpack.adapters.persistence import tables
from ebackpack.bootstrap import Platform
from ebackpack.config import SAMPLE_DIR, Settings
from ebackpack.dev.sample_data import load_profiles
from ebackpack.domain.credentials.keys import KeyRing, SigningKey
from ebackpack.domain.credentials.signer import CredentialSigner
from ebackpack.domain.rules import load_rules
from ebackpack.streaming.topics import RENDER_REQUESTS_BACKFILL
from schemas import (
    CertificateRenderRequestMessage,
    CredentialExpiredMessage,
    CredentialIssuedMessage,
    CredentialRevokedMessage,
    MoodleEventMessage,
    MoodleUserMessage,
)
from schemas.envelope import CloudEvent
from schemas.moodle import USER_DELETED, Profiles
from services.issuer import handlers
from services.issuer.handlers import Context, CredentialNotFound
from tests.builders import completion
from tests.unit.issuer_fakes import FakeUnitOfWork

RULES = load_rules(SAMPLE_DIR / "rules.toml")
PROFILES = load_profiles()
LEARNER = PROFILES.users[0]
CERTIFICATE = 42  # python-basics: badge and certificate, valid for ever
EXPIRING = 43  # pierwsza-pomoc: valid for 730 days
BADGE_ONLY = 44
NO_RULE = 99
WHEN = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
Event = TypeVar("Event", bound=CloudEvent)


@pytest.fixture(scope="module")
def signer() -> CredentialSigner:
    ring = KeyRing(
        (
            SigningKey("ed25519-1", "Ed25519", ed25519.Ed25519PrivateKey.generate()),
            SigningKey("p256-1", "ES256", ec.generate_private_key(ec.SECP256R1())),
        )
    )
    return CredentialSigner(ring, Settings().formats)


@pytest.fixture
def ctx(tmp_path: Path, signer: CredentialSigner) -> Context:
    platform = Platform(Settings(data_dir=tmp_path, code_secret=SecretStr("handlers' unit test secret " * 2)))
    platform.rules = RULES
    return Context(platform, signer)


@pytest.fixture
def uow() -> FakeUnitOfWork:
    fake = FakeUnitOfWork()
    fake.profiles.save(Profiles(users=[LEARNER], courses=PROFILES.courses))
    return fake


def announced(uow: FakeUnitOfWork, model: type[Event]) -> list[Event]:
    """The outbox's events of one type (each message model accepts only its own type)."""
    found = []
    for row in uow.outbox.rows.values():
        try:
            found.append(model.model_validate_json(row.payload))
        except ValidationError:
            continue
    return found


def award(uow: FakeUnitOfWork, ctx: Context, course: int) -> str:
    """Awards a completion of `course`; returns the new award's verification code."""
    handlers.award_batch(uow, ctx, [completion(LEARNER.id, course, WHEN)])
    (row,) = [r for r in uow.awards.rows.values() if r.course_id == course]
    return row.verification_code


def test_a_completion_for_a_rule_awards_once(uow: FakeUnitOfWork, ctx: Context) -> None:
    raw = completion(LEARNER.id, CERTIFICATE, WHEN)

    first = handlers.award_batch(uow, ctx, [raw, raw])  # a redelivery within the batch

    assert [e.topic for e in first.events] == ["credentials", "certificates.render"]
    issued = CredentialIssuedMessage.model_validate_json(first.events[0].payload).data
    request = CertificateRenderRequestMessage.model_validate_json(first.events[1].payload).data
    (saved,) = uow.awards.rows.values()
    assert issued.credential_id == request.credential_id == saved.credential_id
    assert issued.verification_code == saved.verification_code and issued.formats
    assert request.learner_name == f"{LEARNER.firstname} {LEARNER.lastname}"
    assert {fmt for _cid, fmt in uow.awards.signed} == set(issued.formats)

    replay = handlers.award_batch(uow, ctx, [raw])  # not announced yet: the same events again
    assert [e.event_id for e in replay.events] == [e.event_id for e in first.events]
    handlers.mark_sent(uow, [e.event_id for e in replay.events])
    assert handlers.award_batch(uow, ctx, [raw]).events == []  # announced: nothing left to send
    assert len(uow.awards.rows) == 1 and len(uow.outbox.rows) == 2


def test_a_backfill_certificate_is_rendered_on_the_backfill_lane_and_awarded_once(
    uow: FakeUnitOfWork, ctx: Context
) -> None:
    raw = completion(LEARNER.id, CERTIFICATE, WHEN)

    history = handlers.award_batch(uow, ctx, [raw], render_topic=RENDER_REQUESTS_BACKFILL)

    assert [e.topic for e in history.events] == ["credentials", "certificates.render.backfill"]
    live = handlers.award_batch(uow, ctx, [raw])  # the same completion, later on the live lane
    assert [e.event_id for e in live.events] == [e.event_id for e in history.events]  # not a second award
    assert len(uow.awards.rows) == 1 and len(uow.outbox.rows) == 2


def issued_origins(events: list[tables.OutboxRow]) -> dict[int, str]:
    """Course id -> `origin` of the `credential.issued` events among these outbox rows."""
    found: dict[int, str] = {}
    for event in events:
        if event.topic == "credentials":
            data = CredentialIssuedMessage.model_validate_json(event.payload).data
            found[data.course_id] = data.origin
    return found


def test_an_award_from_the_backfill_lane_says_so_in_its_issued_event(
    uow: FakeUnitOfWork, ctx: Context
) -> None:
    history = handlers.award_batch(
        uow,
        ctx,
        [completion(LEARNER.id, CERTIFICATE, WHEN)],
        render_topic=RENDER_REQUESTS_BACKFILL,
        origin="backfill",
    )
    live = handlers.award_batch(uow, ctx, [completion(LEARNER.id, BADGE_ONLY, WHEN)])

    assert issued_origins(history.events) == {CERTIFICATE: "backfill"}
    assert issued_origins(live.events) == {BADGE_ONLY: "live"}
    # The same completion later on the live lane: the credential issued already, its event as saved.
    again = handlers.award_batch(uow, ctx, [completion(LEARNER.id, CERTIFICATE, WHEN)])
    assert issued_origins(again.events) == {CERTIFICATE: "backfill"}


def test_a_parked_backfill_completion_keeps_its_origin_until_it_is_issued(
    uow: FakeUnitOfWork, ctx: Context
) -> None:
    newcomer = PROFILES.users[1]
    history = [completion(newcomer.id, CERTIFICATE, WHEN)]
    live = [completion(newcomer.id, BADGE_ONLY, WHEN)]
    handlers.award_batch(uow, ctx, history, ["moodle.events.backfill/0/3"], origin="backfill")
    handlers.award_batch(uow, ctx, live, ["moodle.events/0/9"])
    assert [r.origin for r in uow.parked.rows] == ["backfill", "live"]

    uow.profiles.save(Profiles(users=[newcomer], courses=[]))
    events = handlers.resume_parked(uow, ctx, {newcomer.id})

    assert issued_origins(events) == {CERTIFICATE: "backfill", BADGE_ONLY: "live"}


def test_a_completion_of_a_course_without_a_rule_awards_nothing(uow: FakeUnitOfWork, ctx: Context) -> None:
    result = handlers.award_batch(uow, ctx, [completion(LEARNER.id, NO_RULE, WHEN)])

    assert result.events == [] and result.parked == [] and result.invalid == []
    assert uow.awards.rows == {} and uow.outbox.rows == {} and uow.parked.count() == 0


def test_poison_is_reported_and_the_rest_of_the_batch_saved(uow: FakeUnitOfWork, ctx: Context) -> None:
    result = handlers.award_batch(uow, ctx, [b"\x00 not json", completion(LEARNER.id, BADGE_ONLY, WHEN)])

    assert [index for index, _error in result.invalid] == [0]
    assert [e.topic for e in result.events] == ["credentials"]  # a badge only: no certificate to render


def test_a_completion_waits_for_its_learners_profile(uow: FakeUnitOfWork, ctx: Context) -> None:
    newcomer = PROFILES.users[1]
    raws = [completion(newcomer.id, CERTIFICATE, WHEN), completion(newcomer.id, BADGE_ONLY, WHEN)]

    result = handlers.award_batch(uow, ctx, raws, ["moodle.events/0/7", "moodle.events/0/8"])

    assert result.parked == [0, 1] and result.events == [] and uow.awards.rows == {}
    assert [r.source for r in uow.parked.rows] == ["moodle.events/0/7", "moodle.events/0/8"]
    assert handlers.resume_parked(uow, ctx) == []  # still no profile: nothing to resume

    profile = MoodleUserMessage.build(id="u1", source="moodle", subject=str(newcomer.id), data=newcomer)
    learner_id = handlers.apply_profile(uow, "user", profile.model_dump_json().encode())
    assert learner_id == newcomer.id
    events = handlers.resume_parked(uow, ctx, {learner_id})

    issued = [
        CredentialIssuedMessage.model_validate_json(e.payload).data
        for e in events
        if e.topic == "credentials"
    ]
    assert [i.course_id for i in issued] == [CERTIFICATE, BADGE_ONLY]  # in the order they happened
    assert uow.parked.count() == 0 and len(uow.awards.rows) == 2
    assert handlers.resume_parked(uow, ctx) == []


def test_a_later_completion_queues_behind_a_parked_one(uow: FakeUnitOfWork, ctx: Context) -> None:
    newcomer = PROFILES.users[1]
    handlers.award_batch(uow, ctx, [completion(newcomer.id, CERTIFICATE, WHEN)])
    uow.profiles.save(Profiles(users=[newcomer], courses=[]))  # came by another route

    later = handlers.award_batch(uow, ctx, [completion(newcomer.id, BADGE_ONLY, WHEN)])

    assert later.parked == [0] and uow.awards.rows == {}
    assert [r.reason for r in uow.parked.rows][1] == "behind this learner's earlier parked messages"


def test_revoke_records_the_revoked_event_once(uow: FakeUnitOfWork, ctx: Context) -> None:
    code = award(uow, ctx, BADGE_ONLY)
    now = WHEN + timedelta(days=3)

    revoked = handlers.revoke(uow, ctx, code.lower().replace("-", " "), "  issued by mistake ", now)
    again = handlers.revoke(uow, ctx, code, "another reason", now + timedelta(days=1))

    assert revoked.status == again.status == "revoked" and again.revocation_reason == "issued by mistake"
    (event,) = announced(uow, CredentialRevokedMessage)
    assert event.data.reason == "issued by mistake" and event.data.revoked_at == now
    assert event.data.verification_code == code
    with pytest.raises(ValueError, match="reason"):
        handlers.revoke(uow, ctx, code, "  ")
    with pytest.raises(CredentialNotFound):
        handlers.revoke(uow, ctx, "XXXX-XXXX-XXXX", "no such credential")


def test_expiry_turns_due_credentials_into_expired_events(uow: FakeUnitOfWork, ctx: Context) -> None:
    award(uow, ctx, EXPIRING)
    award(uow, ctx, BADGE_ONLY)  # valid for ever
    (expiring,) = [r for r in uow.awards.rows.values() if r.valid_until is not None]
    assert expiring.valid_until == WHEN + timedelta(days=730)

    assert handlers.expire_due(uow, ctx, now=WHEN + timedelta(days=729)) == 0
    assert handlers.expire_due(uow, ctx, now=WHEN + timedelta(days=731)) == 1
    assert handlers.expire_due(uow, ctx, now=WHEN + timedelta(days=732)) == 0  # once

    assert expiring.status == "expired"
    (event,) = announced(uow, CredentialExpiredMessage)
    assert (
        event.data.credential_id == expiring.credential_id and event.data.valid_until == expiring.valid_until
    )


def test_rerender_queues_a_render_request_per_certificate(uow: FakeUnitOfWork, ctx: Context) -> None:
    award(uow, ctx, CERTIFICATE)
    award(uow, ctx, BADGE_ONLY)  # no certificate: nothing to render
    before = set(uow.outbox.rows)

    assert handlers.rerender(uow, ctx, course_id=CERTIFICATE) == 1

    (queued,) = [uow.outbox.rows[event_id] for event_id in uow.outbox.rows.keys() - before]
    request = CertificateRenderRequestMessage.model_validate_json(queued.payload).data
    assert queued.topic == "certificates.render" and request.rerender and request.credential_json
    assert handlers.rerender(uow, ctx, course_id=CERTIFICATE) == 1  # each run is a new request
    assert len(uow.outbox.rows) == len(before) + 2
    with pytest.raises(ValueError):
        handlers.rerender(uow, ctx, course_id=CERTIFICATE, rule_id="python-basics")


def test_a_revoked_certificate_is_not_rendered_again(uow: FakeUnitOfWork, ctx: Context) -> None:
    code = award(uow, ctx, CERTIFICATE)
    handlers.revoke(uow, ctx, code, "withdrawn")

    assert handlers.rerender(uow, ctx, rule_id="python-basics") == 0


def test_a_deleted_user_is_erased_and_their_parked_completions_dropped(
    uow: FakeUnitOfWork, ctx: Context
) -> None:
    newcomer = PROFILES.users[1]
    handlers.award_batch(uow, ctx, [completion(newcomer.id, CERTIFICATE, WHEN)])
    assert uow.parked.count() == 1
    message = MoodleEventMessage.model_validate_json(completion(newcomer.id, CERTIFICATE, WHEN))
    deleted = message.model_copy(
        update={"id": "deleted", "data": message.data.model_copy(update={"eventname": USER_DELETED})}
    )

    result = handlers.award_batch(uow, ctx, [deleted.model_dump_json().encode()])

    assert result.events == [] and result.parked == []
    assert uow.erasures.erased == [newcomer.id] and uow.parked.count() == 0


def test_a_rerender_leaves_out_an_erased_learner_and_does_not_wait_for_them(
    uow: FakeUnitOfWork, ctx: Context
) -> None:
    award(uow, ctx, CERTIFICATE)
    uow.profiles.by_learner.pop(LEARNER.id)  # what erasure leaves: the award without its learner

    assert handlers.rerender(uow, ctx, course_id=CERTIFICATE) == 0
