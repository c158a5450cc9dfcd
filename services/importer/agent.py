"""The importer's entry point: a faust agent on `attestations.uploads`, a sweep for uploads whose event
never arrived, and the scheduled re-verification.

The agent only takes an upload event in: it checks the stored row and hands the file to the per-learner
scheduler (`scheduler.py`), so reading the topic never waits on an import. Files are imported in child
processes under a per-file time and memory budget (`sandbox.py`); the verdict is saved and announced
here. The row is in the database (`received`) before its event is sent, so a file that was queued or in
work when the worker stopped is taken up by the sweep: nothing is lost by committing the event early.
"""

from __future__ import annotations

import asyncio
import logging

import faust

from ebackpack.config import Settings, get_settings
from ebackpack.streaming.app import make_app, message_agent, raw_topic, send_and_wait
from ebackpack.streaming.erasure import on_learner_erased
from ebackpack.streaming.policy import RetryPolicy, SourceMessage, survives_outages, with_retries
from ebackpack.streaming.topics import ATTESTATION_UPLOADS, ATTESTATIONS, dlq

from .domain import Attestation
from .erasure import AttestationErasure
from .sandbox import SandboxPool
from .scheduler import FairScheduler
from .service import ImporterService, Job, Outgoing

log = logging.getLogger(__name__)
CONSUMER = "importer"
SWEEP_INTERVAL = 30.0
STUCK_AFTER = 60.0  # seconds in state `received` before the sweep imports an upload itself
REVERIFY_SCAN = 60.0  # seconds between looks for attestations due for re-verification
UNTIL_DONE = RetryPolicy()  # saving and announcing a verdict wait out an outage


def create_app(settings: Settings | None = None) -> faust.App:
    settings = settings or get_settings()
    app = make_app(CONSUMER, settings)
    service = ImporterService.from_settings(settings)
    uploads = raw_topic(app, settings.topic(ATTESTATION_UPLOADS))
    results = raw_topic(app, settings.topic(ATTESTATIONS))
    dead_letters = raw_topic(app, settings.topic(dlq(ATTESTATION_UPLOADS)))
    erase = AttestationErasure(service.sessions, service.objects)
    on_learner_erased(app, settings, erase, dlq=dead_letters, consumer=CONSUMER)  # uploads of erased learners
    sandboxes = SandboxPool(settings)

    async def publish(event: Outgoing) -> None:
        await send_and_wait(results, event.key.encode(), event.value)

    async def import_one(job: Job) -> None:
        outcome = await sandboxes.run(job.attestation_id)
        if outcome.transient is not None:  # the row stays as it was: the sweep (or next scan) retries
            log.warning("import of %s failed on our side: %s", job.attestation_id, outcome.transient)
            return
        verdict = (
            outcome.reason
            if outcome.reason is not None
            else Attestation.model_validate_json(outcome.result or "{}")
        )
        try:
            event, status = await with_retries(
                lambda: asyncio.to_thread(service.save, job.attestation_id, verdict), UNTIL_DONE
            )
        except KeyError:
            log.info("upload %s was deleted while it was imported", job.attestation_id)
            return
        if not (job.announce_only_changes and status == job.status_before):
            await with_retries(lambda: publish(event), UNTIL_DONE)

    scheduler = FairScheduler(sandboxes.size, import_one)

    async def handle(message: SourceMessage) -> None:
        work = await asyncio.to_thread(service.accept, message.body)
        if isinstance(work, Outgoing):  # a redelivered event whose verdict is stored: sent again
            await publish(work)
        else:
            scheduler.submit(work)

    message_agent(app, uploads, f"{CONSUMER}.uploads", handle, dlq=dead_letters, consumer=CONSUMER)

    @app.task
    async def start_sandboxes() -> None:  # child processes ready before the first upload
        await asyncio.to_thread(sandboxes.start)

    @app.timer(SWEEP_INTERVAL)
    @survives_outages
    async def sweep_stuck_uploads() -> None:
        for job in await asyncio.to_thread(service.stuck_jobs, STUCK_AFTER):
            if scheduler.submit(job):
                log.warning("importing upload %s whose event never arrived", job.attestation_id)

    @app.timer(REVERIFY_SCAN)
    @survives_outages
    async def reverify() -> None:
        for job in await asyncio.to_thread(service.due_for_reverification):
            scheduler.submit(job)

    return app
