"""The renderer's entry point: a faust agent on `certificates.render`."""

from __future__ import annotations

import asyncio

import faust

from ebackpack.config import Settings, get_settings
from ebackpack.persistence.engine import make_engine, session_factory
from ebackpack.storage import ObjectStore
from ebackpack.streaming.app import consume, make_app, raw_topic, send_and_wait
from ebackpack.streaming.policy import SourceMessage
from ebackpack.streaming.topics import RENDER_REQUESTS, RENDERED, dlq

from .certificate import CertificateRenderer
from .service import RendererService

CONSUMER = "renderer"


def create_app(settings: Settings | None = None) -> faust.App:
    settings = settings or get_settings()
    app = make_app(CONSUMER, settings)
    service = RendererService(session_factory(make_engine(settings.db_url)), ObjectStore(settings),
                              CertificateRenderer(), settings)
    requests = raw_topic(app, settings.topic(RENDER_REQUESTS))
    rendered = raw_topic(app, settings.topic(RENDERED))
    dead_letters = raw_topic(app, settings.topic(dlq(RENDER_REQUESTS)))

    async def handle(message: SourceMessage) -> None:
        # WeasyPrint is CPU-bound: a thread keeps the consumer's heartbeats going meanwhile.
        event = await asyncio.to_thread(service.handle, message.value)
        await send_and_wait(rendered, event.data.credential_id.encode(), event.to_bytes())

    @app.agent(requests, name=f"{CONSUMER}.certificates")
    async def render(stream: faust.StreamT) -> None:
        async for _ in consume(stream, handle, dlq=dead_letters, consumer=CONSUMER):
            pass

    return app
