"""Everything a learner owns, in one ZIP (the right to data portability, GDPR Art. 20):

- `certificates/<code>/v<N>-<sha256 prefix>.pdf`: every stored version of each certificate PDF (v1 the
  oldest), streamed from object storage;
- `credentials/<code>/<file>`: each credential in every form it has (OB 2.0 JSON, baked PNG and SVG;
  OB 3.0 JSON, JWT and baked PNG);
- `attestations/<id>/<file>`: the external attestations uploaded, as uploaded, and `verdict.json`, the
  importer's result;
- `index.json`: the learner's profile, every credential with its status and files, every attestation,
  the public links and the wallets credentials went to (machine-readable; sha256 of each file).

Written to a file one member at a time: memory holds one PDF chunk or one credential form, not the
account. `progress(done, total)` is told after each member.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, BinaryIO

from sqlalchemy import select

from ebackpack.adapters.certificate_reads import CertificateReads, copy_object, safe_name
from ebackpack.adapters.credential_exports import FORMATS, ExportError, export
from ebackpack.adapters.credential_store import CredentialStore, status_of
from ebackpack.adapters.persistence.tables import (
    AttestationRow,
    AwardRow,
    Learner,
    ShareRow,
    WalletCopyRow,
)
from ebackpack.adapters.storage import ObjectStore
from ebackpack.domain.credentials.facts import as_utc

INDEX = "index.json"
Progress = Callable[[int, int], None]


class NoSuchLearner(LookupError):
    pass


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else as_utc(moment).isoformat()


class LearnerArchive:
    """The ZIP of one learner's data, from the database (within `session`) and object storage."""

    def __init__(self, store: CredentialStore, objects: ObjectStore) -> None:
        self.store, self.session, self.objects = store, store.session, objects

    def write(self, learner_id: int, target: BinaryIO, progress: Progress | None = None) -> dict[str, Any]:
        """Writes the archive; returns its index. Raises NoSuchLearner for an unknown (or erased) one."""
        learner = self.session.get(Learner, learner_id)
        if learner is None:
            raise NoSuchLearner(f"no learner {learner_id}")
        awards = list(
            self.session.scalars(
                select(AwardRow).where(AwardRow.learner_id == learner_id).order_by(AwardRow.issued_on)
            )
        )
        attestations = list(
            self.session.scalars(
                select(AttestationRow)
                .where(AttestationRow.learner_id == learner_id)
                .order_by(AttestationRow.received_at)
            )
        )
        total, done = len(awards) + len(attestations), 0
        index: dict[str, Any] = {
            "generated_at": datetime.now(UTC).isoformat(),
            "learner": {
                "id": learner.id,
                "name": f"{learner.firstname} {learner.lastname}",
                "email": learner.email,
                "language": learner.lang,
            },
            "credentials": [],
            "attestations": [],
            "public_links": self._shares(learner_id),
            "wallets": self._wallets(learner_id),
        }
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for award in awards:
                index["credentials"].append(self._credential(archive, award))
                done += 1
                if progress:
                    progress(done, total)
            for row in attestations:
                index["attestations"].append(self._attestation(archive, row))
                done += 1
                if progress:
                    progress(done, total)
            archive.writestr(INDEX, json.dumps(index, ensure_ascii=False, indent=2))
        return index

    def _credential(self, archive: zipfile.ZipFile, award: AwardRow) -> dict[str, Any]:
        code = award.verification_code
        files: list[dict[str, Any]] = []
        versions = list(reversed(CertificateReads(self.session).versions(award.credential_id)))
        for number, version in enumerate(versions, 1):
            name = f"certificates/{code}/v{number}-{version.sha256[:12]}.pdf"
            copy_object(self.objects, version.object_key, archive, name)
            files.append(
                {
                    "path": name,
                    "form": "certificate PDF",
                    "version": number,
                    "sha256": version.sha256,
                    "rendered_at": _iso(version.rendered_at),
                }
            )
        for fmt in FORMATS:
            try:
                made = export(self.store, award, fmt)
            except ExportError:
                continue  # a form this credential does not have (its proof format was off, say)
            name = f"credentials/{code}/{made.filename}"
            archive.writestr(name, made.content)
            files.append({"path": name, "form": fmt, "sha256": hashlib.sha256(made.content).hexdigest()})
        course = self.store.course(award.course_id)
        return {
            "verification_code": code,
            "credential_id": award.credential_id,
            "achievement": award.achievement_name,
            "course": course.fullname if course else None,
            "issued_on": _iso(award.issued_on),
            "valid_until": _iso(award.valid_until),
            "status": status_of(award, datetime.now(UTC)),
            "revocation_reason": award.revocation_reason,
            "files": files,
        }

    def _attestation(self, archive: zipfile.ZipFile, row: AttestationRow) -> dict[str, Any]:
        folder = f"attestations/{row.id}"
        files = []
        if row.object_key:
            name = f"{folder}/{safe_name(row.filename or 'upload') or 'file'}"
            copy_object(self.objects, row.object_key, archive, name)
            files.append({"path": name, "form": "as uploaded", "sha256": row.sha256})
        verdict = {
            "state": row.state,
            "verification_status": row.verification_status,
            "source_format": row.source_format,
            "rejection_reason": row.rejection_reason,
            "checked_at": _iso(row.checked_at),
            "record": json.loads(row.record) if row.record else None,
        }
        archive.writestr(f"{folder}/verdict.json", json.dumps(verdict, ensure_ascii=False, indent=2))
        files.append({"path": f"{folder}/verdict.json", "form": "the importer's verdict"})
        return {
            "id": row.id,
            "filename": row.filename,
            "submitted_url": row.submitted_url,
            "received_at": _iso(row.received_at),
            "verification_status": row.verification_status,
            "files": files,
        }

    def _shares(self, learner_id: int) -> list[dict[str, Any]]:
        rows = self.session.scalars(select(ShareRow).where(ShareRow.learner_id == learner_id))
        return [
            {
                "credential_id": row.credential_id,
                "created_at": _iso(row.created_at),
                "expires_at": _iso(row.expires_at),
                "withdrawn_at": _iso(row.withdrawn_at),
            }
            for row in rows
        ]

    def _wallets(self, learner_id: int) -> list[dict[str, Any]]:
        rows = self.session.scalars(select(WalletCopyRow).where(WalletCopyRow.learner_id == learner_id))
        return [
            {
                "credential_id": row.credential_id,
                "holder": row.holder,
                "format": row.configuration,
                "issued_at": _iso(row.issued_at),
            }
            for row in rows
        ]
