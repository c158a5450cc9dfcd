"""The renderer's entry point: faust agents on `certificates.render` (live) and
`certificates.render.backfill` (the certificates of a backfill), and on `learners.erased`.

Live requests go first (`ebackpack/streaming/lanes.py`): both agents render through one `LaneLock`, and a
backfill batch gets it only when no live batch waits, so a live certificate waits for one backfill
batch at most, however long the backfill's queue. While live requests keep coming, the backfill renders
two certificates at a time, so that wait stays short and live work keeps most of the renderer when the
machine is busy; after a quiet spell it renders whole batches again (cheaper per certificate)."""

from __future__ import annotations

import asyncio
import time

import faust

from ebackpack.bootstrap import build
from ebackpack.config import Settings, get_settings
from ebackpack.streaming.app import (
    BatchOutcome,
    batch_agent,
    make_app,
    raw_topic,
    send_and_wait,
)
from ebackpack.streaming.erasure import on_learner_erased
from ebackpack.streaming.lanes import BACKFILL, LANE_BUFFER, LIVE, LaneLock, in_chunks
from ebackpack.streaming.policy import SourceMessage
from ebackpack.streaming.topics import RENDER_REQUESTS, RENDER_REQUESTS_BACKFILL, RENDERED, dlq
from schemas import CertificateRenderedMessage

from .certificate import BATCH_SIZE, CertificateRenderer
from .erasure import CertificateErasure
from .service import RendererService

CONSUMER = "renderer"
BATCH_WAIT = 0.05  # seconds a batch waits to fill: the latency a lone request pays
BACKFILL_CHUNK = 2  # backfill certificates rendered at a time while live requests come
LIVE_QUIET = 5.0  # seconds without a live request after which the backfill renders whole batches


def create_app(settings: Settings | None = None) -> faust.App:
    settings = settings or get_settings()
    app = make_app(CONSUMER, settings)
    app.conf.stream_buffer_maxsize = LANE_BUFFER  # a full backfill buffer must not hold up live requests
    platform = build(settings)
    service = RendererService(platform.sessions, platform.objects, CertificateRenderer(), settings)
    requests = raw_topic(app, settings.topic(RENDER_REQUESTS))
    history = raw_topic(app, settings.topic(RENDER_REQUESTS_BACKFILL))
    rendered = raw_topic(app, settings.topic(RENDERED))
    dead_letters = raw_topic(app, settings.topic(dlq(RENDER_REQUESTS)))
    erase = CertificateErasure(service.sessions, service.store)
    on_learner_erased(app, settings, erase, dlq=dead_letters, consumer=CONSUMER)  # PDFs of erased learners

    async def announce(events: list[CertificateRenderedMessage]) -> None:
        await asyncio.gather(
            *(send_and_wait(rendered, e.data.credential_id.encode(), e.to_bytes()) for e in events)
        )

    rendering = LaneLock()  # one batch at a time, live ones first
    live_seen = float("-inf")  # when the last live batch came (monotonic)

    async def render(messages: list[SourceMessage], lane: int) -> BatchOutcome:
        async with rendering.lane(lane):
            # WeasyPrint is CPU-bound: a thread keeps the consumer's heartbeats going meanwhile.
            result = await asyncio.to_thread(service.handle_batch, [m.value or b"" for m in messages])
        await announce(result.announcements)
        return BatchOutcome(poison=list(result.invalid))

    async def handle_live(messages: list[SourceMessage]) -> BatchOutcome:
        nonlocal live_seen
        live_seen = time.monotonic()
        return await render(messages, LIVE)

    def backfill_chunk() -> int:
        return BACKFILL_CHUNK if time.monotonic() - live_seen < LIVE_QUIET else BATCH_SIZE

    async def handle_backfill(messages: list[SourceMessage]) -> BatchOutcome:
        return await in_chunks(messages, backfill_chunk, lambda part: render(part, BACKFILL))

    for topic, name, handle in (
        (requests, f"{CONSUMER}.certificates", handle_live),
        (history, f"{CONSUMER}.certificates.backfill", handle_backfill),
    ):
        batch_agent(
            app,
            topic,
            name,
            handle,
            dlq=dead_letters,
            consumer=CONSUMER,
            size=BATCH_SIZE,
            within=BATCH_WAIT,
        )

    return app
