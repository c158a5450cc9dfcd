"""The issuer's re-derivation of render requests a broker lost (services/issuer/repair.py), against the
real broker and both databases: which requests count as lost, and that none is sent again while the
renderers still have requests to read."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata
from sqlalchemy import select

from ebackpack.adapters.broker import Broker
from ebackpack.adapters.persistence.engine import make_engine, migrate, session_factory
from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow, OutboxRow
from ebackpack.config import Settings
from ebackpack.streaming.topics import CREDENTIALS, RENDER_REQUESTS, create_topics, dlq
from schemas import DeadLetter, DeadLetterMessage
from services.issuer.repair import resend_lost_render_requests, unrendered
from tests.builders import wait_for

pytestmark = pytest.mark.integration
LONG_AGO = datetime.now(UTC) - timedelta(days=1)
LATER = datetime.now(UTC) + timedelta(days=1)  # acknowledged after any check these tests make


def award(credential_id: str, status: str = "issued") -> AwardRow:
    return AwardRow(
        credential_id=credential_id,
        verification_code=f"CODE-{credential_id}",
        learner_id=int(credential_id.split("-")[1]),
        course_id=1,
        rule_id=f"rule-{credential_id}",
        achievement_name="A",
        issued_on=LONG_AGO,
        status=status,
        source_event_id="e",
        created_at=LONG_AGO,
    )


def request(
    settings: Settings,
    event_id: str,
    credential_id: str,
    sent_at: datetime | None,
    created_at: datetime = LONG_AGO,
    topic: str = RENDER_REQUESTS,
) -> OutboxRow:
    return OutboxRow(
        event_id=event_id,
        credential_id=credential_id,
        topic=settings.topic(topic),
        key=credential_id,
        payload="{}",
        created_at=created_at,
        sent_at=sent_at,
    )


def certificate(credential_id: str) -> CertificateRow:
    return CertificateRow(
        credential_id=credential_id,
        bucket="b",
        sha256="0" * 64,
        size=1,
        template="t",
        object_key=f"certificates/{credential_id}/x.pdf",
        rendered_at=LONG_AGO,
    )


def seed(settings: Settings) -> None:
    sessions = session_factory(make_engine(settings.db_url))
    with sessions.begin() as s:
        s.add_all([award(f"c-{i}") for i in range(1, 8)] + [award("c-9", status="revoked")])
        s.flush()
        s.add_all(
            [
                request(settings, "lost", "c-1", sent_at=LONG_AGO),  # acknowledged, no PDF: lost
                request(settings, "rendered", "c-2", sent_at=LONG_AGO),
                certificate("c-2"),
                request(settings, "revoked", "c-9", sent_at=LONG_AGO),  # revoked: no PDF wanted
                request(settings, "older", "c-3", sent_at=LONG_AGO),  # a second one is still unsent
                request(settings, "unsent", "c-3", sent_at=None, created_at=LONG_AGO),
                request(settings, "just-sent", "c-4", sent_at=LATER),  # after the check
                request(settings, "first", "c-5", sent_at=LONG_AGO, created_at=LONG_AGO),
                request(
                    settings, "rerender", "c-5", sent_at=LONG_AGO, created_at=LONG_AGO + timedelta(minutes=1)
                ),
                request(settings, "issued-event", "c-6", sent_at=LONG_AGO, topic=CREDENTIALS),  # not a render
                request(settings, "dead", "c-7", sent_at=LONG_AGO),  # in the dead-letter topic
            ]
        )


def unsent(settings: Settings) -> set[str]:
    with session_factory(make_engine(settings.db_url))() as s:
        return set(s.scalars(select(OutboxRow.event_id).where(OutboxRow.sent_at.is_(None))))


def test_which_render_requests_count_as_lost(database_url: str, settings: Settings) -> None:
    local = settings.model_copy(update={"database_url": database_url})
    migrate(local.db_url)
    seed(local)
    with session_factory(make_engine(local.db_url))() as s:
        found = unrendered(s, local.topic(RENDER_REQUESTS), datetime.now(UTC), 100)
    assert found == {"c-1": "lost", "c-5": "rerender", "c-7": "dead"}


def test_lost_requests_are_sent_again_only_when_the_renderers_have_read_the_whole_log(
    settings: Settings,
) -> None:
    migrate(settings.db_url)
    create_topics(settings)
    seed(settings)
    sessions = session_factory(make_engine(settings.db_url))
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap.split(","))
    letter = DeadLetterMessage.build(
        id="dl-1",
        source="test",
        subject=None,
        data=DeadLetter(
            reason="r",
            error_type="InvalidMessage",
            consumer="renderer",
            topic=settings.topic(RENDER_REQUESTS),
            partition=0,
            offset=0,
            key_b64=base64.b64encode(b"c-7").decode(),
            value_b64=base64.b64encode(b"{}").decode(),
        ),
    )
    producer.send(settings.topic(dlq(RENDER_REQUESTS)), key=b"c-7", value=letter.to_bytes()).get(timeout=30)
    # a request the renderers have not read yet: they are behind, so nothing is known to be lost
    producer.send(settings.topic(RENDER_REQUESTS), key=b"c-8", value=b"{}").get(timeout=30)
    producer.close()

    assert resend_lost_render_requests(sessions, settings) == 0
    assert unsent(settings) == {"unsent"}

    # the renderers' group reads that request: now the log holds nothing they have not handled
    topic = settings.topic(RENDER_REQUESTS)
    with Broker(settings) as broker:
        tps = broker.partitions(topic)
        ends = broker.offsets(tps)[1]
    committer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        group_id=settings.topic("renderer"),
        enable_auto_commit=False,
    )
    committer.assign(tps)
    committer.commit({tp: OffsetAndMetadata(ends[tp], "", -1) for tp in tps if ends[tp]})
    committer.close(autocommit=False)

    # (a check whose broker reads do not answer in time concludes nothing: asked again until one does)
    assert wait_for(lambda: resend_lost_render_requests(sessions, settings), 60, "lost requests") == 2
    assert unsent(settings) == {"unsent", "lost", "rerender"}  # the dead-lettered one is the operator's
