"""The importer's service layer: an upload event in, the stored record and one result event out.

Flow per upload (see DESIGN.md): the backpack stored the raw bytes in S3 and an `attestations` row in
state `received` before it announced the upload. Here the bytes are read back, run through
`pipeline.import_bytes`, and the row becomes `imported` (with the normalized record) or `rejected`
(with the reason). The result event's id is stored with the row: a redelivered upload event re-sends
that same event instead of importing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters import metrics
from ebackpack.adapters.credential_store import CredentialStore
from ebackpack.adapters.keystore import keyring_for
from ebackpack.adapters.persistence.tables import AttestationRow, Learner
from ebackpack.adapters.storage import ObjectStore
from ebackpack.bootstrap import Platform
from ebackpack.config import Settings
from ebackpack.domain.credentials.keys import KeyRing
from ebackpack.domain.rules import RuleBook
from ebackpack.streaming.errors import InvalidMessage, parse_message
from ebackpack.streaming.topics import ATTESTATIONS
from schemas import (
    AttestationImported,
    AttestationImportedMessage,
    AttestationRejected,
    AttestationRejectedMessage,
    AttestationUploadedMessage,
    CloudEvent,
    deterministic_id,
)
from services.importer.domain import Attestation, Fetcher, ImportContext, ImportRejected, OwnCredential
from services.importer.domain import Learner as ImportLearner
from services.importer.fetch import PolicyFetcher
from services.importer.pipeline import import_bytes, import_url

log = logging.getLogger(__name__)
SOURCE = "urn:ebackpack:importer"
REVERIFY_BATCH = 100


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: str
    value: bytes


@dataclass(frozen=True)
class Job:
    """One stored upload to (re-)import. Re-verification announces only a status that changed."""

    attestation_id: str
    learner_id: int
    announce_only_changes: bool = False
    status_before: str | None = None


class OwnRecords:
    """Our own credentials and keys, as the import context asks for them."""

    def __init__(self, store: CredentialStore, rules: RuleBook, ring: Callable[[], KeyRing]) -> None:
        self.store, self.rules, self._ring = store, rules, ring

    def credential(self, code_or_id: str) -> OwnCredential | None:
        award = self.store.find(code_or_id.removeprefix("urn:uuid:"))
        if award is None:
            return None
        learner = self.store.learner(award.learner_id)
        return OwnCredential(
            code=award.verification_code,
            title=award.achievement_name,
            issuer_name=self.rules.issuer.name,
            issuer_url=self.rules.issuer.url,
            recipient_email=learner.email if learner else "",
            issued_on=_aware(award.issued_on),
            expires_on=_aware(award.valid_until) if award.valid_until else None,
            revoked=award.status == "revoked",
            revoked_reason=award.revocation_reason,
        )

    def key(self, method: str) -> dict[str, Any] | None:
        did = self.store.urls.did
        if not method.startswith(did + "#"):
            return None
        key = self._ring().find(method.removeprefix(did + "#"))
        return dict(key.public_jwk()) if key else None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ImporterService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        objects: ObjectStore,
        rules: RuleBook,
        settings: Settings,
        fetcher: Fetcher | None = None,
    ) -> None:
        self.sessions, self.objects, self.rules, self.settings = sessions, objects, rules, settings
        self.fetcher = fetcher if fetcher is not None else PolicyFetcher.for_settings(settings)
        self.topic = settings.topic(ATTESTATIONS)

    @classmethod
    def from_settings(cls, settings: Settings) -> ImporterService:
        return cls.from_platform(Platform(settings))

    @classmethod
    def from_platform(cls, platform: Platform) -> ImporterService:
        return cls(platform.sessions, platform.objects, platform.rules, platform.settings)

    # ------------------------------------------------------------------------------ use cases

    def handle(self, raw: bytes) -> Outgoing:
        """One upload event: import it (or re-send the stored result of an earlier delivery)."""
        work = self.accept(raw)
        return work if isinstance(work, Outgoing) else self.check(work.attestation_id)

    def accept(self, raw: bytes) -> Outgoing | Job:
        """One upload event: the stored result of an earlier delivery to send again, or the work to do."""
        upload = parse_message(AttestationUploadedMessage, raw).data
        with self.sessions() as session:
            row = session.get(AttestationRow, upload.attestation_id)
            if row is None:
                raise InvalidMessage(
                    f"no stored upload {upload.attestation_id}: the backpack stores it first"
                )
            if row.state != "received" and row.event_id and not upload.recheck:
                return self._event_of(row)
            return Job(row.id, row.learner_id)

    def check(self, attestation_id: str) -> Outgoing:
        """(Re-)import one stored upload from its original bytes or URL; stores and returns the result.
        In this process, without a budget: the worker runs `compute` in a sandbox instead."""
        return self._check(attestation_id)[0]

    def _check(self, attestation_id: str) -> tuple[Outgoing, str | None]:
        return self.save(attestation_id, self.compute(attestation_id))

    def compute(self, attestation_id: str) -> Attestation | str:
        """The record of one stored upload, or its rejection reason; stores nothing. Raises when our
        side fails (database, S3): transient, the upload stays `received`."""
        with self.sessions() as session:
            row = session.get(AttestationRow, attestation_id)
            if row is None:
                raise KeyError(attestation_id)
            object_key, url, learner_id = row.object_key, row.submitted_url, row.learner_id
            ctx = self.context_for(session, learner_id)
            data = self.objects.get(object_key) if object_key else None  # S3 errors: transient, retried
            return self._import(data, url, ctx)

    def save(self, attestation_id: str, result: Attestation | str) -> tuple[Outgoing, str | None]:
        """Stores a verdict; the result event to announce and the status (None: rejected)."""
        status = None if isinstance(result, str) else result.verification.status.value
        saved = self._save(attestation_id, result)
        metrics.imported("rejected" if status is None else "imported", status)
        return saved, status

    def reverify_due(self, now: datetime | None = None) -> list[Outgoing]:
        """Imported attestations last checked longer ago than the interval: checked again, so one that
        was revoked at its source shows as revoked here. Only changed statuses are announced."""
        changed = []
        for job in self.due_for_reverification(now):
            event, status = self._check(job.attestation_id)
            if status != job.status_before:
                changed.append(event)
        return changed

    def due_for_reverification(self, now: datetime | None = None) -> list[Job]:
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=self.settings.import_reverify_interval)
        with self.sessions() as session:
            return [
                Job(row.id, row.learner_id, announce_only_changes=True, status_before=row.verification_status)
                for row in session.scalars(
                    select(AttestationRow)
                    .where(AttestationRow.state == "imported", AttestationRow.checked_at < cutoff)
                    .order_by(AttestationRow.checked_at)
                    .limit(REVERIFY_BATCH)
                )
            ]

    def stuck_uploads(self, older_than_seconds: float) -> list[str]:
        """Uploads stored but never imported (their event was lost, or the importer was down)."""
        return [job.attestation_id for job in self.stuck_jobs(older_than_seconds)]

    def stuck_jobs(self, older_than_seconds: float) -> list[Job]:
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        with self.sessions() as session:
            return [
                Job(attestation_id, learner_id)
                for attestation_id, learner_id in session.execute(
                    select(AttestationRow.id, AttestationRow.learner_id)
                    .where(AttestationRow.state == "received", AttestationRow.received_at < cutoff)
                    .order_by(AttestationRow.received_at)
                    .limit(REVERIFY_BATCH)
                )
            ]

    # ------------------------------------------------------------------------------- helpers

    def context_for(self, session: Session, learner_id: int) -> ImportContext:
        learner = session.get(Learner, learner_id)
        store = CredentialStore.for_settings(session, self.rules, self.settings)
        own = OwnRecords(store, self.rules, lambda: keyring_for(self.settings))
        return ImportContext(
            learner=ImportLearner(
                email=learner.email if learner else "",
                name=f"{learner.firstname} {learner.lastname}" if learner else None,
            ),
            trusted_issuers=self.settings.trusted_issuers,
            # Each file's fetches share one time allowance (a part of the file's budget).
            fetcher=self.fetcher.for_one_file() if isinstance(self.fetcher, PolicyFetcher) else self.fetcher,
            own_credential=own.credential,
            own_key=own.key,
            own_public_url=self.settings.public_url,
        )

    @staticmethod
    def _import(data: bytes | None, url: str | None, ctx: ImportContext) -> Attestation | str:
        """The record, or the rejection reason. A parser bug rejects this upload, never the worker."""
        try:
            if data is not None:
                return import_bytes(data, ctx)
            if url:
                return import_url(url, ctx)
            return "the upload has neither a file nor a URL"
        except ImportRejected as exc:
            return str(exc)
        except MemoryError:  # over the process's memory budget (see sandbox.py): its own reason there
            raise
        except Exception:
            log.exception("importer failed on an upload")
            return "the file could not be read (an error on our side, logged; it will be checked again)"

    def _save(self, attestation_id: str, result: Attestation | str) -> Outgoing:
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            row = session.get(AttestationRow, attestation_id)
            if row is None:
                raise KeyError(attestation_id)
            row.checked_at = now
            row.event_id = deterministic_id("attestation-result", attestation_id, now.isoformat())
            if isinstance(result, str):
                row.state, row.rejection_reason = "rejected", result
            else:
                row.state, row.rejection_reason = "imported", None
                row.source_format = result.source_format.value
                row.verification_status = result.verification.status.value
                row.record = result.model_dump_json()
            return self._event_of(row)

    def _event_of(self, row: AttestationRow) -> Outgoing:
        assert row.event_id and row.checked_at
        checked_at = _aware(row.checked_at)
        kind: type[CloudEvent]
        data: AttestationRejected | AttestationImported
        if row.state == "rejected":
            kind, data = AttestationRejectedMessage, _rejected(row, checked_at)
        else:
            kind, data = AttestationImportedMessage, _imported(row, checked_at)
        message = kind.build(id=row.event_id, source=SOURCE, subject=row.id, time=checked_at, data=data)
        return Outgoing(self.topic, str(row.learner_id), message.to_bytes())


def _rejected(row: AttestationRow, checked_at: datetime) -> AttestationRejected:
    return AttestationRejected(
        attestation_id=row.id,
        learner_id=row.learner_id,
        reason=row.rejection_reason or "",
        checked_at=checked_at,
    )


def _imported(row: AttestationRow, checked_at: datetime) -> AttestationImported:
    record = Attestation.model_validate_json(row.record or "{}")
    return AttestationImported(
        attestation_id=row.id,
        learner_id=row.learner_id,
        source_format=record.source_format.value,
        title=record.title,
        issuer_name=record.issuer.name,
        issuer_url=record.issuer.url,
        issuer_identifier=record.issuer.identifier,
        issued_on=record.issued_on,
        expires_on=record.expires_on,
        recipient_match=record.recipient.value,
        verification_status=record.verification.status.value,
        verification_method=record.verification.method,
        verification_reason=record.verification.reason,
        checked_at=checked_at,
    )
