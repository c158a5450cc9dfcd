"""What is read about stored certificate PDFs (the renderer's `certificates` table): the current and
earlier versions of a credential's PDF, and all certificates of a course in one ZIP.

The renderer writes these rows (services/renderer/repository.py adds its writes to `CertificateReads`);
the backpack's pages and the CLI only read them, here. The ZIP is streamed from object storage: memory
stays flat however many PDFs there are; it holds the current version of each certificate, plus a manifest
to check them by.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow, Learner
from ebackpack.adapters.storage import ObjectStore

MANIFEST = "manifest.csv"
Progress = Callable[[int], None]  # told how many PDFs are in the archive so far


class CertificateReads:
    """The stored versions of certificate PDFs, within the caller's session."""

    def __init__(self, session: Session):
        self.session = session

    def latest(self, credential_id: str) -> CertificateRow | None:
        """The current version: the one most recently rendered (or rendered back to)."""
        query = (
            select(CertificateRow)
            .where(CertificateRow.credential_id == credential_id)
            .order_by(CertificateRow.rendered_at.desc(), CertificateRow.id.desc())
            .limit(1)
        )
        return self.session.scalars(query).first()

    def versions(self, credential_id: str) -> list[CertificateRow]:
        """Every stored version, the current one (most recently rendered) first."""
        query = (
            select(CertificateRow)
            .where(CertificateRow.credential_id == credential_id)
            .order_by(CertificateRow.rendered_at.desc(), CertificateRow.id.desc())
        )
        return list(self.session.scalars(query))


@dataclass(frozen=True)
class ZipEntry:
    name: str
    object_key: str
    code: str
    learner: str
    sha256: str
    rendered_at: str
    status: str


def safe_name(text: str) -> str:
    """A file name part from any text: letters, digits, dots and dashes; at most 80 characters."""
    return re.sub(r"[^\w.-]+", "_", text, flags=re.UNICODE).strip("_")[:80]


def copy_object(store: ObjectStore, key: str, archive: zipfile.ZipFile, name: str) -> None:
    """Streams a stored object into the archive as `name`, chunk by chunk, with the archive's own
    compression (PDFs and uploads are far below the 2 GiB that would need ZIP64)."""
    with archive.open(name, "w") as member:
        for chunk in store.stream(key):
            member.write(chunk)


def course_entries(session: Session, course_id: int) -> list[ZipEntry]:
    """The current certificate version of every award of the course, by verification code."""
    awards = session.scalars(
        select(AwardRow).where(AwardRow.course_id == course_id).order_by(AwardRow.verification_code)
    ).all()
    repo, entries = CertificateReads(session), []
    for award in awards:
        current = repo.latest(award.credential_id)
        if current is None:
            continue
        learner = session.get(Learner, award.learner_id)
        name = f"{learner.firstname} {learner.lastname}" if learner else ""
        entries.append(
            ZipEntry(
                name=f"{award.verification_code}_{safe_name(name)}.pdf",
                object_key=current.object_key,
                code=award.verification_code,
                learner=name,
                sha256=current.sha256,
                rendered_at=current.rendered_at.isoformat(),
                status=award.status,
            )
        )
    return entries


def write_zip(
    store: ObjectStore, entries: Iterable[ZipEntry], target: BinaryIO, progress: Progress | None = None
) -> int:
    """Streams each PDF into the archive (stored, not deflated: PDFs are compressed already)."""
    written = []
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for count, entry in enumerate(entries, 1):
            copy_object(store, entry.object_key, archive, entry.name)
            written.append(entry)
            if progress:
                progress(count)
        archive.writestr(MANIFEST, _manifest(written))
    return len(written)


def _manifest(entries: list[ZipEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["file", "verification_code", "learner", "sha256", "rendered_at", "status"])
    for e in entries:
        writer.writerow([e.name, e.code, e.learner, e.sha256, e.rendered_at, e.status])
    return out.getvalue()
