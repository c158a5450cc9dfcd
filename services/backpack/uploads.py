"""Receiving external attestations: bytes to S3 first, then the database row, then the upload event.

Nothing is lost when a later step fails: once S3 and the row have it, the importer finds the upload
either through its event or, if the event never reached the broker, through its sweep of uploads left
in state `received`.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from kafka import KafkaProducer
from kafka.errors import KafkaError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.kafka import bounded_producer
from ebackpack.adapters.persistence.tables import AttestationRow
from ebackpack.adapters.storage import ObjectStore
from ebackpack.config import Settings
from ebackpack.domain.attestations.errors import ImportRejected
from ebackpack.domain.attestations.record import Attestation
from ebackpack.domain.attestations.sniff import sniff
from ebackpack.streaming.topics import ATTESTATION_UPLOADS
from schemas import AttestationUploaded, AttestationUploadedMessage, deterministic_id

log = logging.getLogger(__name__)
SOURCE = "urn:ebackpack:backpack"
MAX_FILENAME = 200
MAX_URL = 2048
ANNOUNCE_TIMEOUT = 10.0
# What the upload event carries from the attestation row under the same names.
UPLOAD_FIELDS = ("learner_id", "object_key", "filename", "media_type", "size", "sha256")


class UploadRefused(ValueError):
    """The upload is not accepted; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def clean_filename(name: str | None) -> str | None:
    """The name as shown to the learner. Never used in a path: object keys are random ids."""
    if not name:
        return None
    if any(ch in name for ch in "/\\\x00") or name in (".", ".."):
        raise UploadRefused(400, "the file name must be a plain name, without folders or path separators")
    if len(name) > MAX_FILENAME:
        raise UploadRefused(400, f"the file name is longer than {MAX_FILENAME} characters")
    return PurePosixPath(name).name


class Announcer:
    """Sends upload events and waits for the broker's acknowledgement."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topic(ATTESTATION_UPLOADS)
        self._producer: KafkaProducer | None = None

    def announce(self, key: str, value: bytes) -> bool:
        try:
            if self._producer is None:
                self._producer = bounded_producer(
                    self.settings, client_id="ebackpack-uploads", timeout=ANNOUNCE_TIMEOUT
                )
            self._producer.send(self.topic, key=key.encode(), value=value).get(timeout=ANNOUNCE_TIMEOUT)
            return True
        except KafkaError as exc:  # the importer's sweep picks the stored upload up instead
            log.warning("upload event not acknowledged (the importer's sweep will find it): %s", exc)
            return False

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)


@dataclass(frozen=True)
class Received:
    row: dict[str, Any]
    announced: bool


def describe(row: AttestationRow) -> dict[str, Any]:
    """The API's view of one attestation (the learner's own: the original JSON included)."""
    record = Attestation.model_validate_json(row.record).model_dump(mode="json") if row.record else None
    return {
        "id": row.id,
        "state": row.state,
        "filename": row.filename,
        "media_type": row.media_type,
        "size": row.size,
        "sha256": row.sha256,
        "url": row.submitted_url,
        "received_at": row.received_at.isoformat(),
        "checked_at": row.checked_at.isoformat() if row.checked_at else None,
        "rejection_reason": row.rejection_reason,
        "record": record,
    }


class AttestationUploads:
    def __init__(
        self, sessions: sessionmaker[Session], objects: ObjectStore, settings: Settings, announcer: Announcer
    ) -> None:
        self.sessions, self.objects, self.settings, self.announcer = sessions, objects, settings, announcer

    def receive_file(self, learner_id: int, data: bytes, filename: str | None) -> Received:
        name = clean_filename(filename)
        limit = self.settings.import_max_upload_bytes
        if len(data) > limit:
            raise UploadRefused(413, f"the file is {len(data):,} bytes; the limit is {limit:,} bytes")
        try:
            media_type = sniff(data).media_type
        except ImportRejected as exc:
            raise UploadRefused(415, str(exc)) from None
        attestation_id = str(uuid.uuid4())
        key = f"attestations/{learner_id}/{attestation_id}"
        self.objects.put(key, data, media_type, {"learner": str(learner_id)})
        row = AttestationRow(
            id=attestation_id,
            learner_id=learner_id,
            object_key=key,
            filename=name,
            media_type=media_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        return self._store_and_announce(row)

    def receive_url(self, learner_id: int, url: str) -> Received:
        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > MAX_URL:
            raise UploadRefused(422, f"give an http(s) URL of at most {MAX_URL} characters")
        row = AttestationRow(id=str(uuid.uuid4()), learner_id=learner_id, submitted_url=url, size=0)
        return self._store_and_announce(row)

    def recheck(self, learner_id: int, attestation_id: str) -> bool:
        """Ask the importer to verify again (e.g. to see a revocation at the source now)."""
        with self.sessions() as session:
            row = self._own(session, learner_id, attestation_id)
            return self._announce(row, recheck=True)

    def list(self, learner_id: int) -> list[dict[str, Any]]:
        with self.sessions() as session:
            rows = session.scalars(
                select(AttestationRow)
                .where(AttestationRow.learner_id == learner_id)
                .order_by(AttestationRow.received_at.desc())
            )
            return [describe(row) for row in rows]

    def get(self, learner_id: int, attestation_id: str) -> dict[str, Any]:
        with self.sessions() as session:
            return describe(self._own(session, learner_id, attestation_id))

    def original(self, learner_id: int, attestation_id: str) -> tuple[bytes, str, str | None]:
        with self.sessions() as session:
            row = self._own(session, learner_id, attestation_id)
            if row.object_key is None:
                raise UploadRefused(404, "this attestation is a submitted link, not a file")
            return (
                self.objects.get(row.object_key),
                row.media_type or "application/octet-stream",
                row.filename,
            )

    def delete(self, learner_id: int, attestation_id: str) -> None:
        """The learner's own data: the row and the stored file both go."""
        with self.sessions.begin() as session:
            row = self._own(session, learner_id, attestation_id)
            if row.object_key:
                self.objects.delete(row.object_key)
            session.delete(row)

    @staticmethod
    def _own(session: Session, learner_id: int, attestation_id: str) -> AttestationRow:
        row = session.get(AttestationRow, attestation_id)
        if row is None or row.learner_id != learner_id:  # another learner's id looks like a missing one
            raise UploadRefused(404, "no such attestation in your backpack")
        return row

    def _store_and_announce(self, row: AttestationRow) -> Received:
        row.state, row.received_at = "received", datetime.now(UTC)
        with self.sessions.begin() as session:
            session.add(row)
        with self.sessions() as session:
            stored = session.get(AttestationRow, row.id)
            assert stored is not None
            return Received(describe(stored), self._announce(stored))

    def _announce(self, row: AttestationRow, recheck: bool = False) -> bool:
        same = {name: getattr(row, name) for name in UPLOAD_FIELDS}
        data = AttestationUploaded(attestation_id=row.id, url=row.submitted_url, recheck=recheck, **same)
        event_id = deterministic_id(
            "attestation-upload", row.id, datetime.now(UTC).isoformat() if recheck else ""
        )
        message = AttestationUploadedMessage.build(id=event_id, source=SOURCE, subject=row.id, data=data)
        return self.announcer.announce(str(row.learner_id), message.to_bytes())
