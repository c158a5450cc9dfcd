"""What a broker that lost data took with it, re-derived from the issuer's SQL.

The outbox knows which certificate render requests the broker acknowledged (`sent_at`), and the
certificates table which PDFs were stored. A request acknowledged but never rendered is either still in
the log ahead of the renderers, dead-lettered, or lost with the broker's data. Once the renderers'
consumer group has committed everything the log holds (or beyond: see `streaming/offset_guard.py`), a
request sent before that moment and still without a PDF is not ahead of them: unless it is in the
dead-letter topic (left to the operator, `ebackpack deadletters`), the broker lost it, and its outbox
row is marked unsent so the relay announces it again. The renderer skips PDFs that are stored already:
a request sent twice costs one lookup, never a second certificate.

Nothing here is specific to the embedded broker: the check reads committed offsets and fetch high
watermarks, as Apache Kafka gives them too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from datetime import UTC, datetime, timedelta

import faust
from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from ebackpack.adapters.broker import Broker
from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow, OutboxRow
from ebackpack.config import Settings
from ebackpack.ops.groups import known_groups
from ebackpack.streaming.topics import RENDER_REQUESTS, RENDER_REQUESTS_BACKFILL, dlq
from schemas import DeadLetterMessage

log = logging.getLogger(__name__)
REPAIR_INTERVAL = 30.0  # seconds between two checks
CLOCK_MARGIN = timedelta(seconds=2)  # requests sent this close to the check wait for the next one
MAX_RESENT = 500  # requests sent again per check


def renderer_group(settings: Settings) -> str:
    return next(group for group, (role, _topics) in known_groups(settings).items() if role == "renderer")


def renderers_caught_up(settings: Settings, topic: str) -> bool:
    """Whether the renderers' group committed, on every partition of a render requests topic, at or
    beyond the log end. Committed offsets are read first: a request in the log at that moment is at or
    below the end read after, so it was handled."""
    with Broker(settings, timeout=5.0) as broker:
        tps = broker.partitions(topic)
        committed = broker.committed(renderer_group(settings))
        if not tps:
            return False
        starts, reported = broker.offsets(tps, exact=False)
        ends = broker.high_watermarks(reported)  # a partition that did not answer: not known, not caught up
    return len(ends) == len(tps) and all(committed.get(tp, starts[tp]) >= ends[tp] for tp in tps)


def unrendered(session: Session, topic: str, sent_before: datetime, limit: int) -> dict[str, str]:
    """Credential id -> event id of its newest render request, for requests acknowledged before
    `sent_before` whose credential has no stored PDF, is not revoked, and has no request still unsent."""
    other = aliased(OutboxRow)
    pending = exists().where(
        and_(other.credential_id == OutboxRow.credential_id, other.topic == topic, other.sent_at.is_(None))
    )
    stored = exists().where(CertificateRow.credential_id == OutboxRow.credential_id)
    query = (
        select(OutboxRow.credential_id, OutboxRow.event_id)
        .join(AwardRow, AwardRow.credential_id == OutboxRow.credential_id)
        .where(
            OutboxRow.topic == topic,
            OutboxRow.sent_at < sent_before,
            AwardRow.status != "revoked",
            ~stored,
            ~pending,
        )
        .order_by(OutboxRow.created_at)
        .limit(limit)
    )
    return {credential_id: event_id for credential_id, event_id in session.execute(query)}


class NotKnown(RuntimeError):
    """The broker did not say enough in time: this check concludes nothing."""


def dead_lettered(settings: Settings) -> set[str]:
    """Credential ids (the key of a render request) in the render requests' dead-letter topic (both
    lanes' letters go there), read to its end; raises NotKnown when it could not be read whole (a request
    sent again would only be dead-lettered again)."""
    topic = settings.topic(dlq(RENDER_REQUESTS))
    with Broker(settings, timeout=5.0) as broker:
        tps = broker.partitions(topic)
        starts, reported = broker.offsets(tps, exact=False)
        ends = broker.high_watermarks(reported)
        if not tps or len(ends) < len(tps):
            raise NotKnown(f"the end of {topic} is not known")
        records = broker.read({tp: (starts[tp], ends[tp]) for tp in tps})
    if len(records) < sum(ends[tp] - starts[tp] for tp in tps):
        raise NotKnown(f"{topic} was not read to its end")
    keys = set()
    for record in records:
        with contextlib.suppress(ValueError):
            letter = DeadLetterMessage.model_validate_json(record.value or b"").data
            if letter.key_b64 is not None:
                keys.add(base64.b64decode(letter.key_b64).decode("utf-8", "replace"))
    return keys


def resend_lost_render_requests(sessions: sessionmaker[Session], settings: Settings) -> int:
    """One check per render requests topic, live and backfill (see the module's docstring); returns how
    many requests are to be sent again."""
    return sum(
        _resend_lost(sessions, settings, settings.topic(name))
        for name in (RENDER_REQUESTS, RENDER_REQUESTS_BACKFILL)
    )


def _resend_lost(sessions: sessionmaker[Session], settings: Settings, topic: str) -> int:
    checked_at = datetime.now(UTC) - CLOCK_MARGIN
    with sessions() as session:
        if not unrendered(session, topic, checked_at, 1):
            return 0  # the usual case: no broker call at all
    checked_at = datetime.now(UTC) - CLOCK_MARGIN
    if not renderers_caught_up(settings, topic):
        return 0  # the renderers still have requests to read: theirs to render
    with sessions() as session:
        candidates = unrendered(session, topic, checked_at, MAX_RESENT)
    try:
        gave_up = dead_lettered(settings) if candidates else set()
    except NotKnown as exc:
        log.info("lost render requests not checked this time: %s", exc)
        return 0
    lost = {cid: event for cid, event in candidates.items() if cid not in gave_up}
    if not lost:
        return 0
    with sessions.begin() as session:
        session.execute(
            update(OutboxRow).where(OutboxRow.event_id.in_(list(lost.values()))).values(sent_at=None)
        )
    log.error(
        "%d certificate render requests were acknowledged by the broker but never rendered, and the "
        "renderers have read everything the log holds: the broker lost them; sending them again",
        len(lost),
    )
    return len(lost)


def install_repair(app: faust.App, sessions: sessionmaker[Session], settings: Settings) -> None:
    """A timer of the issuer's app: the check every `REPAIR_INTERVAL` seconds; the outbox relay sends."""

    @app.timer(REPAIR_INTERVAL)
    async def resend_lost_requests() -> None:
        try:
            await asyncio.to_thread(resend_lost_render_requests, sessions, settings)
        except Exception as exc:  # the database or the broker is away: the next check tries again
            log.warning("lost render requests not checked: %s", exc)
