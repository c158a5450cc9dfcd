"""The demo job: the whole pipeline on a Moodle data set, on the embedded stack or on configured backends.

start stack -> migrate DB, bucket, topics -> load profiles -> start issuer + renderer + importer
-> publish events -> wait until the issuer has committed past every event and every certificate is
stored -> upload one learner's badge and PDF back as external attestations -> summary.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from kafka.admin import KafkaAdminClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow, OutboxRow, SignedCredentialRow
from ebackpack.adapters.storage import ObjectStore
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.sample_data import Dataset
from ebackpack.dev.stack import EmbeddedStack
from ebackpack.dev.workers import Worker, running
from ebackpack.domain.credentials.signer import DATA_INTEGRITY
from ebackpack.domain.rules import RuleBook, load_rules
from ebackpack.streaming.errors import InvalidMessage
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import MOODLE_EVENTS, RENDER_REQUESTS, dlq
from schemas import DeadLetterMessage
from services.gateway.profiles import store_profiles
from services.gateway.publisher import MoodleEventPublisher
from services.issuer.domain import NotALearnerCompletion, learner_completion
from services.issuer.service import parse_moodle_message


class DemoTimeout(RuntimeError):
    pass


@dataclass
class CertificateLink:
    code: str
    verify_url: str
    pdf: str


@dataclass
class ImportLine:
    """One attestation the demo uploaded back, as the importer recorded it."""

    what: str
    source_format: str
    status: str
    reason: str


@dataclass
class DemoSummary:
    events: int
    completions: int
    issued: int
    new_issued: int
    rendered: int
    dead_lettered: int
    signed: int = 0
    certificates: list[CertificateLink] = field(default_factory=list)
    imports: list[ImportLine] = field(default_factory=list)
    out_dir: str = ""
    seconds: float = 0.0

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data.pop("out_dir")
        data.pop("seconds")
        return data


class Progress(Protocol):
    """What the demo reports while it waits; the CLI draws it."""

    def stage(self, text: str) -> None: ...
    def published(self, done: int, total: int) -> None: ...
    def processed(self, events_done: int, events_total: int, pdfs_done: int, pdfs_total: int) -> None: ...


class SilentProgress:
    def stage(self, text: str) -> None:
        pass

    def published(self, done: int, total: int) -> None:
        pass

    def processed(self, events_done: int, events_total: int, pdfs_done: int, pdfs_total: int) -> None:
        pass


def count_completions(dataset: Dataset) -> int:
    """Learner course completions in the data set, as the issuer's own rules see them."""
    total = 0
    for _key, value in dataset.messages:
        try:
            learner_completion(parse_moodle_message(value).data)
            total += 1
        except (InvalidMessage, NotALearnerCompletion):
            continue
    return total


@dataclass
class PipelineProbe:
    """Reads how far the pipeline got: committed offsets, database rows, dead letters."""

    settings: Settings
    sessions: sessionmaker[Session]
    rules: RuleBook

    def issuer_position(self) -> dict[int, int]:
        """Committed offset per partition of `moodle.events` for the issuer's consumer group."""
        group = self.settings.topic(self.settings.issuer_group)
        admin = KafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap.split(","))
        try:
            offsets = admin.list_group_offsets({group: None}).get(group, {})
        finally:
            admin.close()
        topic = self.settings.topic(MOODLE_EVENTS)
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}

    def counts(self) -> tuple[int, int, int, int]:
        """(awards, awards that need a certificate, certificates stored, unannounced events)."""
        with_certificate = [r.id for r in self.rules.rules if r.certificate]
        with self.sessions() as s:
            awards = s.scalar(select(func.count()).select_from(AwardRow)) or 0
            wanted = (
                s.scalar(
                    select(func.count()).select_from(AwardRow).where(AwardRow.rule_id.in_(with_certificate))
                )
                or 0
            )
            stored = s.scalar(select(func.count(func.distinct(CertificateRow.credential_id)))) or 0
            pending = (
                s.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.sent_at.is_(None))) or 0
            )
        return awards, wanted, stored, pending

    def dead_letters(self, since: datetime) -> int:
        topics = [self.settings.topic(dlq(t)) for t in (MOODLE_EVENTS, RENDER_REQUESTS)]
        return sum(
            1
            for record in read_topics(self.settings, topics)
            if DeadLetterMessage.model_validate_json(record.value).time >= since
        )


@contextmanager
def running_pipeline(settings: Settings) -> Iterator[list[Worker]]:
    with running([Worker(name, settings) for name in ("issuer", "renderer", "importer")]) as workers:
        yield workers


def wait_until_done(
    probe: PipelineProbe, ends: dict[int, int], workers: list[Worker], progress: Progress, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    total = sum(ends.values())
    while True:
        position = probe.issuer_position()
        consumed = sum(min(position.get(p, 0), end) for p, end in ends.items())
        _awards, wanted, stored, pending = probe.counts()
        progress.processed(consumed, total, stored, wanted)
        if consumed >= total and pending == 0 and stored >= wanted:
            return
        dead = [w.name for w in workers if not w.running]
        if dead:
            raise DemoTimeout(f"worker(s) {', '.join(dead)} stopped; see {workers[0].log_path.parent}")
        if time.monotonic() > deadline:
            raise DemoTimeout(
                f"pipeline not done after {timeout:.0f} s: {consumed}/{total} events, "
                f"{stored}/{wanted} PDFs; logs in {workers[0].log_path.parent}"
            )
        time.sleep(0.5)


def export_certificates(
    settings: Settings, sessions: sessionmaker[Session], out_dir: Path
) -> list[CertificateLink]:
    """Copy every stored PDF out of object storage, named by verification code."""
    store = ObjectStore(settings)
    links = []
    with sessions() as s:
        rows = s.execute(
            select(AwardRow.verification_code, CertificateRow.object_key)
            .join(CertificateRow, CertificateRow.credential_id == AwardRow.credential_id)
            .order_by(AwardRow.verification_code, CertificateRow.rendered_at)
        ).all()
    latest = {code: key for code, key in rows}
    for code, key in latest.items():
        target = store.download(key, out_dir / f"certificate-{code}.pdf")
        links.append(
            CertificateLink(code=code, verify_url=settings.verify_url(code), pdf=str(target.resolve()))
        )
    return links


def import_back(
    settings: Settings,
    sessions: sessionmaker[Session],
    links: list[CertificateLink],
    workers: list[Worker],
    timeout: float = 120.0,
) -> list[ImportLine]:
    """The external-attestation path on our own output: the first learner's baked badge and PDF,
    uploaded as the backpack API would, until the importer has recorded them."""
    from ebackpack.adapters.credential_exports import export
    from ebackpack.adapters.credential_store import CredentialStore
    from services.backpack.uploads import Announcer, AttestationUploads

    if not links:
        return []
    with sessions() as session:
        award = session.scalars(select(AwardRow).where(AwardRow.verification_code == links[0].code)).one()
        badge = export(
            CredentialStore.for_settings(session, load_rules(settings.rules_file), settings), award, "ob2-png"
        ).content
    announcer = Announcer(settings)
    uploads = AttestationUploads(sessions, ObjectStore(settings), settings, announcer)
    try:
        sent = {
            "baked Open Badges 2.0 PNG": uploads.receive_file(award.learner_id, badge, "badge.png"),
            "certificate PDF": uploads.receive_file(
                award.learner_id, Path(links[0].pdf).read_bytes(), "certificate.pdf"
            ),
        }
    finally:
        announcer.close()
    deadline = time.monotonic() + timeout
    lines = []
    for what, received in sent.items():
        while (row := uploads.get(award.learner_id, received.row["id"]))["state"] == "received":
            if time.monotonic() > deadline or not all(w.running for w in workers):
                raise DemoTimeout(
                    f"the importer did not record the {what}; logs in {workers[0].log_path.parent}"
                )
            time.sleep(0.3)
        record = row["record"] or {}
        verification = record.get("verification", {})
        lines.append(
            ImportLine(
                what,
                record.get("source_format", "-"),
                verification.get("status", row["state"]),
                verification.get("reason", row["rejection_reason"] or ""),
            )
        )
    return lines


def count_signed(sessions: sessionmaker[Session]) -> int:
    """Awards with a stored, signed Open Badges 3.0 credential (Data Integrity proof)."""
    with sessions() as session:
        query = (
            select(func.count())
            .select_from(SignedCredentialRow)
            .where(SignedCredentialRow.format == DATA_INTEGRITY)
        )
        return int(session.scalar(query) or 0)


def run_demo(
    settings: Settings, dataset: Dataset, progress: Progress | None = None, timeout: float = 600.0
) -> DemoSummary:
    progress = progress or SilentProgress()
    started, clock = datetime.now(UTC), time.monotonic()
    with ExitStack() as stack:
        if settings.embedded:
            progress.stage("starting the embedded broker (Tansu) and S3 server (SeaweedFS)")
            stack.enter_context(EmbeddedStack(settings))
        progress.stage("creating database schema, bucket and topics")
        sessions = prepare(settings)
        store_profiles(sessions, dataset.profiles)
        probe = PipelineProbe(settings, sessions, load_rules(settings.rules_file))
        issued_before = probe.counts()[0]
        progress.stage("starting the issuer and the renderer")
        workers = stack.enter_context(running_pipeline(settings))
        progress.stage(f"publishing {len(dataset.messages)} Moodle events")
        publisher = MoodleEventPublisher(settings)
        ends = publisher.publish(dataset.messages, lambda n: progress.published(n, len(dataset.messages)))
        publisher.close()
        progress.stage("waiting for awards and certificates")
        wait_until_done(probe, ends, workers, progress, timeout)
        issued, _wanted, stored, _pending = probe.counts()
        dead = probe.dead_letters(started)
        progress.stage("copying the PDFs out of object storage")
        out_dir = settings.data_dir / "out"
        links = export_certificates(settings, sessions, out_dir)
        signed = count_signed(sessions)
        progress.stage("uploading a badge and a PDF back as external attestations")
        imports = import_back(settings, sessions, links, workers)
        progress.stage("stopping")
    return DemoSummary(
        events=len(dataset.messages),
        completions=count_completions(dataset),
        issued=issued,
        new_issued=issued - issued_before,
        rendered=stored,
        dead_lettered=dead,
        signed=signed,
        certificates=links,
        imports=imports,
        out_dir=str(out_dir.resolve()),
        seconds=round(time.monotonic() - clock, 1),
    )
