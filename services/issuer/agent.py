"""The issuer's entry point: a faust agent on `moodle.events` and an outbox relay timer."""

from __future__ import annotations

import asyncio
import logging

import faust

from ebackpack.config import Settings, get_settings
from ebackpack.persistence.engine import make_engine, session_factory
from ebackpack.persistence.tables import OutboxRow
from ebackpack.streaming.app import consume, make_app, raw_topic, send_and_wait
from ebackpack.streaming.policy import SourceMessage
from ebackpack.streaming.topics import CREDENTIALS, MOODLE_EVENTS, RENDER_REQUESTS, dlq

from .rules import load_rules
from .service import IssuerService

log = logging.getLogger(__name__)
CONSUMER = "issuer"
RELAY_INTERVAL = 2.0
RELAY_AGE = 5.0  # seconds: younger events are still being sent by the agent itself


def create_app(settings: Settings | None = None) -> faust.App:
    settings = settings or get_settings()
    app = make_app(settings.issuer_group, settings)
    service = IssuerService(session_factory(make_engine(settings.db_url)), load_rules(settings.rules_file),
                            settings)
    events = raw_topic(app, settings.topic(MOODLE_EVENTS))
    dead_letters = raw_topic(app, settings.topic(dlq(MOODLE_EVENTS)))

    outbox_topics = {settings.topic(name): raw_topic(app, settings.topic(name))
                     for name in (CREDENTIALS, RENDER_REQUESTS)}

    async def announce(rows: list[OutboxRow]) -> None:
        for row in rows:
            await send_and_wait(outbox_topics[row.topic], row.key.encode() if row.key else None,
                                row.payload.encode())
        if rows:
            await asyncio.to_thread(service.mark_sent, [r.event_id for r in rows])

    async def handle(message: SourceMessage) -> int:
        rows = await asyncio.to_thread(service.handle, message.value)
        await announce(rows)
        return len(rows)

    @app.agent(events, name=f"{CONSUMER}.awards")
    async def award(stream: faust.StreamT) -> None:
        async for _ in consume(stream, handle, dlq=dead_letters, consumer=CONSUMER):
            pass

    @app.timer(settings.expiry_scan_interval)
    async def expire_credentials() -> None:
        """Expiry is a point in time, not an event: a scan turns it into one expired event each,
        which the outbox relay announces."""
        expired = await asyncio.to_thread(service.expire_due)
        if expired:
            log.info("%d credentials expired", expired)

    @app.timer(RELAY_INTERVAL)
    async def relay_outbox() -> None:
        rows = await asyncio.to_thread(service.stale_events, RELAY_AGE)
        if rows:
            log.warning("relaying %d saved but unannounced events", len(rows))
            await announce(rows)

    return app
