"""The consumer groups of the pipeline and the dead-letter topics, by name."""

from __future__ import annotations

from ebackpack.config import Settings
from ebackpack.streaming.topics import (
    ATTESTATION_UPLOADS,
    CREDENTIAL_COMMANDS,
    MOODLE_COURSES,
    MOODLE_EVENTS,
    MOODLE_EVENTS_BACKFILL,
    MOODLE_USERS,
    RENDER_REQUESTS,
    RENDER_REQUESTS_BACKFILL,
    TOPICS,
)

REPLAY_GROUP = "dlq-replay"
REPLAY_HEADER = "ebackpack-replay-of"  # on a replayed message: "<dlq topic>/<partition>/<offset>"
DLQ_SUFFIX = ".dlq"


def replay_group(settings: Settings) -> str:
    return settings.topic(REPLAY_GROUP)


def dlq_topics() -> list[str]:
    return [t.name for t in TOPICS if t.name.endswith(DLQ_SUFFIX)]


def known_groups(settings: Settings) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Consumer group id -> (role, the topics it consumes; more show up from its committed offsets).

    The workers' group ids are their faust app ids: `make_app(name)` -> `settings.topic(name)`.
    """
    return {
        settings.topic(settings.issuer_group): (
            "issuer",
            (MOODLE_EVENTS, MOODLE_EVENTS_BACKFILL, MOODLE_USERS, MOODLE_COURSES, CREDENTIAL_COMMANDS),
        ),
        settings.topic("renderer"): (  # services/renderer/agent.py
            "renderer",
            (RENDER_REQUESTS, RENDER_REQUESTS_BACKFILL),
        ),
        settings.topic("importer"): ("importer", (ATTESTATION_UPLOADS,)),  # services/importer/agent.py
        settings.topic(settings.notify_group): ("notifier", ()),
        replay_group(settings): ("dead-letter replay", tuple(dlq_topics())),
    }
