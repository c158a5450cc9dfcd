"""The issuer's entry point: faust agents on `moodle.events` (live) and `moodle.events.backfill` (history
from the gateway's backfill and import), agents keeping learner and course profiles, an outbox relay
timer, and the parked completions (waiting for a profile) resumed when the profile comes or by a timer.

Live work goes first (`ebackpack/streaming/lanes.py`): every write takes one `LaneLock`, and a backfill
batch gets it only when no live writer waits. The backfill's certificates are rendered on a lane of
their own too: their render requests go to `certificates.render.backfill`, which the renderer takes only
while no live request waits, and a backfill batch is written only while the renderer has at most
`backfill_render_backlog` of them not yet committed, so that the backfill's awards do not run far ahead
of its PDFs (taking the CPU the renderer needs). Both lanes award through the same handler: one
credential per learner and rule whichever lane (or both) brought the completion; its `credential.issued`
event says on which lane it was awarded (`origin`: `live` or `backfill`), so that the notifier need not
tell learners of every old completion a backfill brings."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import faust
from kafka import TopicPartition

from ebackpack.adapters import metrics
from ebackpack.adapters.broker import Broker
from ebackpack.adapters.persistence.tables import OutboxRow
from ebackpack.bootstrap import build
from ebackpack.config import Settings, get_settings
from ebackpack.streaming.app import (
    BatchOutcome,
    batch_agent,
    make_app,
    message_agent,
    raw_topic,
)
from ebackpack.streaming.lanes import BACKFILL, LANE_BUFFER, LIVE, Backlog, LaneLock, in_chunks
from ebackpack.streaming.policy import GaveUp, RetryPolicy, SourceMessage, survives_outages, with_retries
from ebackpack.streaming.topics import (
    CREDENTIAL_COMMANDS,
    CREDENTIALS,
    LEARNERS_ERASED,
    MOODLE_COURSES,
    MOODLE_EVENTS,
    MOODLE_EVENTS_BACKFILL,
    MOODLE_USERS,
    RENDER_REQUESTS,
    RENDER_REQUESTS_BACKFILL,
    dlq,
)
from schemas import credentials

from .commands import carry_out
from .repair import install_repair, renderer_group
from .service import IssuerService

log = logging.getLogger(__name__)
T = TypeVar("T")
CONSUMER = "issuer"
MARK_POLICY = RetryPolicy(max_attempts=12, max_delay=8.0)  # then the relay announces the events again
RELAY_INTERVAL = 2.0
RELAY_AGE = 5.0  # seconds: younger events are still being sent by the agent itself
MARK_BATCH = 500  # acknowledged events marked sent in one transaction
BATCH_SIZE = 200  # Moodle events saved in one transaction (fewer commits: the issuer's main cost)
BATCH_WAIT = 0.05  # seconds a batch waits to fill: the latency a lone event pays
BACKFILL_BATCH_SIZE = 100  # backfill messages taken from the stream at once
BACKFILL_CHUNK = 25  # ... written in chunks of this many while certificates are being rendered
PARKED_INTERVAL = 15.0  # seconds between two rounds resuming parked completions whose profile came
# by another route (a profile stored by the gateway's database, a course added to the rules file...)


def create_app(settings: Settings | None = None) -> faust.App:
    settings = settings or get_settings()
    app = make_app(settings.issuer_group, settings)
    app.conf.stream_buffer_maxsize = LANE_BUFFER  # a full backfill buffer must not hold up live events
    service = IssuerService.from_platform(build(settings))
    install_repair(app, service.sessions, settings)  # render requests a broker lost are sent again
    events = raw_topic(app, settings.topic(MOODLE_EVENTS))
    history = raw_topic(app, settings.topic(MOODLE_EVENTS_BACKFILL))
    dead_letters = raw_topic(app, settings.topic(dlq(MOODLE_EVENTS)))

    outbox_topics = {
        settings.topic(name): raw_topic(app, settings.topic(name))
        for name in (CREDENTIALS, RENDER_REQUESTS, RENDER_REQUESTS_BACKFILL, LEARNERS_ERASED)
    }

    sent: asyncio.Queue[tuple[str, Awaitable[object]]] = asyncio.Queue()
    # One writer at a time: concurrent SQLite writers in one process wait in the busy handler's sleeps.
    # Live writers first: a backfill batch is written only when none waits.
    writing = LaneLock()
    # partition -> offset after the newest backfill render request acknowledged
    render_ends: dict[int, int] = {}
    render_topic = settings.topic(RENDER_REQUESTS_BACKFILL)
    render_backlog = Backlog(_render_backlog(settings, render_ends), settings.backfill_render_backlog)

    async def write(step: Callable[..., T], *args: object) -> T:
        async with writing.lane(LIVE):
            return await asyncio.to_thread(step, *args)

    async def announce(rows: list[OutboxRow]) -> None:
        """Hands the events to the producer without waiting for the broker: the award is already
        committed with its outbox rows, so the input offset may be committed now. `mark_announced`
        marks them sent once acknowledged; an event never acknowledged is sent again by the relay."""
        for row in rows:
            ack = await outbox_topics[row.topic].send(
                key=row.key.encode() if row.key else None, value=row.payload.encode(), force=True
            )
            sent.put_nowait((row.event_id, ack))

    @app.task
    async def mark_announced() -> None:
        while True:
            batch = [await sent.get()]
            while not sent.empty() and len(batch) < MARK_BATCH:
                batch.append(sent.get_nowait())
            acked = []
            for event_id, ack in batch:
                try:
                    meta = await ack
                    acked.append(event_id)
                    if getattr(meta, "topic", None) == render_topic:  # aiokafka's RecordMetadata
                        at: tuple[int, int] = (meta.partition, meta.offset)  # type: ignore[attr-defined]
                        render_ends[at[0]] = max(render_ends.get(at[0], 0), at[1] + 1)
                except Exception as exc:  # the relay sends it again
                    log.warning("event %s not acknowledged: %s", event_id, exc)
            try:
                await with_retries(functools.partial(write, service.mark_sent, acked), MARK_POLICY)
            except GaveUp as exc:  # still unsent in the outbox: the relay announces them again
                log.warning("%d acknowledged events not marked sent: %s", len(acked), exc)

    async def issue(
        step: Callable[..., T], events: Callable[[T], list[OutboxRow]], *args: object, lane: int = LIVE
    ) -> T:
        """Saves and hands the events to the producer under one lock: what the consumer issues and what
        resuming parked completions issues are announced in the order they were saved, so a learner's
        credentials keep their order on the topic."""
        async with writing.lane(lane):
            result = await asyncio.to_thread(step, *args)
            await announce(events(result))
            return result

    async def handle_live(messages: list[SourceMessage]) -> BatchOutcome:
        return await handle_batch(messages, LIVE)

    async def handle_backfill(messages: list[SourceMessage]) -> BatchOutcome:
        """Written when no live batch waits and the renderer's backfill queue has room; while this worker
        sends render requests, in chunks, each waiting for room, so the queue exceeds its bound by one
        chunk at most. (The offsets are committed after the whole batch: a crash in between writes the
        saved chunks again, idempotently.) Without render requests, whole: chunks made live completions
        wait longer there (bench/README.md, "Backfill beside live events")."""
        chunk = BACKFILL_CHUNK if render_ends and settings.backfill_render_backlog else len(messages)

        async def write_chunk(part: list[SourceMessage]) -> BatchOutcome:
            await render_backlog.room()
            return await handle_batch(part, BACKFILL)

        return await in_chunks(messages, lambda: chunk, write_chunk)

    async def handle_batch(messages: list[SourceMessage], lane: int) -> BatchOutcome:
        result = await issue(
            service.handle_batch,
            lambda r: r.events,
            [m.value or b"" for m in messages],
            [f"{m.topic}/{m.partition}/{m.offset}" for m in messages],
            RENDER_REQUESTS if lane == LIVE else RENDER_REQUESTS_BACKFILL,
            credentials.LIVE if lane == LIVE else credentials.BACKFILL,  # what the issued events say
            lane=lane,
        )
        if result.parked:
            log.info(
                "%d completion(s) parked until their learner's or course's profile arrives",
                len(result.parked),
            )
            await resume()  # those parked only behind a learner's earlier ones may go now
        return BatchOutcome(poison=list(result.invalid))

    async def resume(learner_ids: set[int] | None = None, course_id: int | None = None) -> None:
        rows = await issue(service.resume_parked, list, learner_ids, course_id)
        if rows:
            log.info("parked completions resumed: %d event(s) announced", len(rows))

    batch_agent(
        app,
        events,
        f"{CONSUMER}.awards",
        handle_live,
        dlq=dead_letters,
        consumer=CONSUMER,
        size=BATCH_SIZE,
        within=BATCH_WAIT,
    )
    batch_agent(  # the history: the same handler, written only when no live batch waits
        app,
        history,
        f"{CONSUMER}.awards.backfill",
        handle_backfill,
        dlq=dead_letters,
        consumer=CONSUMER,
        size=BACKFILL_BATCH_SIZE,
        within=BATCH_WAIT,
    )

    for kind, topic_name in (("user", MOODLE_USERS), ("course", MOODLE_COURSES)):
        _profile_agent(
            app, service, write, resume, kind, raw_topic(app, settings.topic(topic_name)), dead_letters
        )

    _command_agent(app, service, write, settings)

    @app.timer(PARKED_INTERVAL)
    @survives_outages
    async def resume_parked() -> None:
        await resume()
        metrics.parked(CONSUMER, await asyncio.to_thread(service.parked_count))

    @app.timer(settings.expiry_scan_interval)
    @survives_outages
    async def expire_credentials() -> None:
        """Expiry is a point in time, not an event: a scan turns it into one expired event each,
        which the outbox relay announces."""
        expired = await write(service.expire_due)
        if expired:
            log.info("%d credentials expired", expired)

    @app.timer(RELAY_INTERVAL)
    @survives_outages
    async def relay_outbox() -> None:
        rows = await asyncio.to_thread(service.stale_events, RELAY_AGE)
        if rows:
            log.warning("relaying %d saved but unannounced events", len(rows))
            await announce(rows)

    return app


def _render_backlog(settings: Settings, ends: dict[int, int]) -> Callable[[], int]:
    """Backfill render requests the renderer's group has not committed yet: from the offsets after this
    worker's newest acknowledged request per partition (`ends`, kept by the worker: the end offsets the
    embedded broker reports are not exact, and probing them is slow under load) and the group's committed
    offsets, read from the broker on a connection kept between calls."""
    group, topic = renderer_group(settings), settings.topic(RENDER_REQUESTS_BACKFILL)
    broker: Broker | None = None

    def measure() -> int:
        nonlocal broker
        produced = dict(ends)  # a copy: the worker's event loop adds to it meanwhile
        if not produced:
            return 0
        broker = broker or Broker(settings, timeout=5.0)
        try:
            committed = broker.committed(group)
        except Exception:
            broker.close()
            broker = None  # reconnect next time
            raise
        return sum(max(0, end - committed.get(TopicPartition(topic, p), 0)) for p, end in produced.items())

    return measure


def _profile_agent(
    app: faust.App,
    service: IssuerService,
    write: Callable[..., Awaitable[object]],
    resume: Callable[..., Awaitable[None]],
    kind: str,
    topic: faust.TopicT,
    dead_letters: faust.TopicT,
) -> None:
    """Keeps the learners / courses tables current from a compacted profile topic (a name change applies
    to certificates rendered later) and resumes the completions parked for that profile. Tombstones
    (a deleted user: no value) change nothing here: the erasure comes with user_deleted."""

    async def handle(message: SourceMessage) -> None:
        profile = await write(service.apply_profile, kind, message.key, message.value)
        if isinstance(profile, int):
            await (resume({profile}) if kind == "user" else resume(course_id=profile))

    message_agent(app, topic, f"{CONSUMER}.profiles.{kind}", handle, dlq=dead_letters, consumer=CONSUMER)


def _command_agent(
    app: faust.App, service: IssuerService, write: Callable[..., Awaitable[object]], settings: Settings
) -> None:
    """Administrators' commands from the backpack (revoke, re-render a course), in order per credential.
    The revocation is saved with its event in the outbox, which the relay announces; a command naming no
    existing credential is dead-lettered."""
    commands = raw_topic(app, settings.topic(CREDENTIAL_COMMANDS))
    dead_letters = raw_topic(app, settings.topic(dlq(CREDENTIAL_COMMANDS)))

    async def handle(message: SourceMessage) -> None:
        log.info("administrator's command: %s", await write(carry_out, service, message.value))

    message_agent(app, commands, f"{CONSUMER}.commands", handle, dlq=dead_letters, consumer=CONSUMER)
