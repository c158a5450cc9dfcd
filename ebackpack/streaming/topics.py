"""Every topic, its partition count and purpose. Created explicitly before any worker starts,
because the embedded broker would auto-create with its own default partition count."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from ebackpack.config import Settings

log = logging.getLogger(__name__)

MOODLE_EVENTS = "moodle.events"
MOODLE_EVENTS_BACKFILL = "moodle.events.backfill"
CREDENTIALS = "credentials"
RENDER_REQUESTS = "certificates.render"
RENDER_REQUESTS_BACKFILL = "certificates.render.backfill"
RENDERED = "certificates.rendered"
MOODLE_USERS = "moodle.users"
MOODLE_COURSES = "moodle.courses"
ATTESTATION_UPLOADS = "attestations.uploads"
ATTESTATIONS = "attestations"
LOGSTORE_ROWS = "moodle.logstore"
CREDENTIAL_COMMANDS = "credentials.commands"
LEARNERS_ERASED = "learners.erased"


@dataclass(frozen=True)
class TopicSpec:
    """A topic as `create_topics` makes it: its partitions, what it carries, and its config overrides."""

    name: str
    partitions: int
    doc: str
    config: dict[str, str] = field(default_factory=dict)


# Moodle events and render requests carry personal data (names; a deleted user's e-mail before the
# gateway redacts it): they are kept a week, long enough to replay after an outage, then dropped.
RETAIN_EVENTS_MS = 7 * 24 * 3600 * 1000


def dlq(topic: str) -> str:
    return f"{topic}.dlq"


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        MOODLE_EVENTS,
        4,
        "Moodle events from the gateway, key = learner id.",
        {"retention.ms": str(RETAIN_EVENTS_MS)},
    ),
    TopicSpec(
        MOODLE_EVENTS_BACKFILL,
        4,
        "Historical Moodle events from the gateway's backfill and import, key = learner id: the issuer "
        "takes them only while `moodle.events` (live) has nothing waiting.",
        {"retention.ms": str(RETAIN_EVENTS_MS)},
    ),
    TopicSpec(
        MOODLE_USERS,
        4,
        "Learner profiles (name, e-mail, language), key = Moodle user id; a deleted user gets a tombstone.",
        {"cleanup.policy": "compact"},
    ),
    TopicSpec(
        MOODLE_COURSES,
        2,
        "Course profiles (full name), key = Moodle course id.",
        {"cleanup.policy": "compact"},
    ),
    TopicSpec(CREDENTIALS, 4, "Credential issued (later revoked / expired / erased), key = learner id."),
    TopicSpec(
        LEARNERS_ERASED,
        2,
        "Learners erased by the issuer (Moodle deleted the user), for every service that keeps their data "
        "to delete it; key = learner id. Internal.",
    ),
    TopicSpec(
        RENDER_REQUESTS,
        4,
        "Certificate render requests, key = credential id.",
        {"retention.ms": str(RETAIN_EVENTS_MS)},
    ),
    TopicSpec(
        RENDER_REQUESTS_BACKFILL,
        4,
        "Render requests of certificates awarded from `moodle.events.backfill`, key = credential id: the "
        "renderer takes them only while `certificates.render` (live) has nothing waiting.",
        {"retention.ms": str(RETAIN_EVENTS_MS)},
    ),
    TopicSpec(RENDERED, 4, "Certificate PDFs stored in S3, key = credential id."),
    TopicSpec(
        CREDENTIAL_COMMANDS,
        2,
        "Administrators' commands for the issuer (revoke, re-render a course), key = credential id "
        "(course:<id> for a course), so one credential's commands keep their order.",
    ),
    TopicSpec(dlq(CREDENTIAL_COMMANDS), 1, "Dead letters of the issuer's commands (unknown credential...)."),
    TopicSpec(
        LOGSTORE_ROWS,
        1,
        "Moodle log-store rows a dead-letter replay sends back to the gateway's poller, key = log row id.",
        {"retention.ms": str(RETAIN_EVENTS_MS)},
    ),
    TopicSpec(dlq(LOGSTORE_ROWS), 1, "Dead letters of the gateway's log-store poller, backfill and import."),
    TopicSpec(dlq(MOODLE_EVENTS), 1, "Dead letters of the issuer."),
    TopicSpec(dlq(RENDER_REQUESTS), 1, "Dead letters of the renderer."),
    TopicSpec(ATTESTATION_UPLOADS, 2, "External attestations uploaded by learners, key = learner id."),
    TopicSpec(ATTESTATIONS, 2, "Attestations imported or rejected by the importer, key = learner id."),
    TopicSpec(dlq(ATTESTATION_UPLOADS), 1, "Dead letters of the importer."),
    TopicSpec(dlq("credentials.notifier"), 1, "Dead letters of the notifier (undeliverable messages)."),
)


def create_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create every topic (idempotent). Returns the names that were newly created."""
    admin = _admin(settings, timeout)
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(settings.topic(t.name), t.partitions, 1, topic_configs=t.config)
            for t in TOPICS
            if settings.topic(t.name) not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race: fine
                admin.create_topics(wanted)
        return [t.name for t in wanted]
    finally:
        admin.close()


def _admin(settings: Settings, timeout: float) -> KafkaAdminClient:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return KafkaAdminClient(
                bootstrap_servers=settings.kafka_bootstrap.split(","),
                client_id="ebackpack-admin",
                request_timeout_ms=10_000,
            )
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka at {settings.kafka_bootstrap} is not reachable: {exc}") from exc
            time.sleep(0.5)
