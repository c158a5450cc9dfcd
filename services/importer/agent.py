"""The importer's entry point: a faust agent on `attestations.uploads`, a sweep for uploads whose event
never arrived, and the scheduled re-verification."""

from __future__ import annotations

import asyncio
import logging

import faust

from ebackpack.config import Settings, get_settings
from ebackpack.persistence.engine import make_engine, session_factory
from ebackpack.storage import ObjectStore
from ebackpack.streaming.app import consume, make_app, raw_topic, send_and_wait
from ebackpack.streaming.policy import SourceMessage, survives_outages
from ebackpack.streaming.topics import ATTESTATION_UPLOADS, ATTESTATIONS, dlq
from services.issuer.rules import load_rules

from .service import ImporterService, Outgoing

log = logging.getLogger(__name__)
CONSUMER = "importer"
SWEEP_INTERVAL = 30.0
STUCK_AFTER = 60.0  # seconds in state `received` before the sweep imports an upload itself
REVERIFY_SCAN = 60.0  # seconds between looks for attestations due for re-verification


def create_app(settings: Settings | None = None) -> faust.App:
    settings = settings or get_settings()
    app = make_app(CONSUMER, settings)
    service = ImporterService(
        session_factory(make_engine(settings.db_url)),
        ObjectStore(settings),
        load_rules(settings.rules_file),
        settings,
    )
    uploads = raw_topic(app, settings.topic(ATTESTATION_UPLOADS))
    results = raw_topic(app, settings.topic(ATTESTATIONS))
    dead_letters = raw_topic(app, settings.topic(dlq(ATTESTATION_UPLOADS)))

    async def publish(event: Outgoing) -> None:
        await send_and_wait(results, event.key.encode(), event.value)

    async def handle(message: SourceMessage) -> None:
        # Parsing and verifying are CPU-bound (PDF rasterizing, canonicalization): off the event loop.
        await publish(await asyncio.to_thread(service.handle, message.body))

    @app.agent(uploads, name=f"{CONSUMER}.uploads")
    async def imports(stream: faust.StreamT) -> None:
        async for _ in consume(stream, handle, dlq=dead_letters, consumer=CONSUMER):
            pass

    @app.timer(SWEEP_INTERVAL)
    @survives_outages
    async def sweep_stuck_uploads() -> None:
        for attestation_id in await asyncio.to_thread(service.stuck_uploads, STUCK_AFTER):
            log.warning("importing upload %s whose event never arrived", attestation_id)
            await publish(await asyncio.to_thread(service.check, attestation_id))

    @app.timer(REVERIFY_SCAN)
    @survives_outages
    async def reverify() -> None:
        for event in await asyncio.to_thread(service.reverify_due):
            await publish(event)

    return app
