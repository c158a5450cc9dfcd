"""The renderer's service layer: render request in, stored PDF and a rendered event out.

Idempotent: a request whose credential already has a stored certificate is announced again, not
re-rendered, unless it asks for a re-render (after a template change). Rendering is deterministic and
the object key holds the content hash, so a crash between "stored" and "recorded" only rewrites the
same bytes under the same key, and a re-render that changes the PDF adds a version beside the old one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters import metrics
from ebackpack.adapters.persistence.tables import CertificateRow
from ebackpack.adapters.storage import ObjectStore
from ebackpack.config import Settings
from ebackpack.streaming.errors import InvalidMessage, parse_message
from schemas import (
    CertificateRendered,
    CertificateRenderedMessage,
    CertificateRenderRequest,
    CertificateRenderRequestMessage,
    deterministic_id,
)

from .certificate import CertificateRenderer, UnknownTemplateError, sha256_hex
from .repository import CertificateRepository

SOURCE = "ebackpack/renderer"


def object_key(credential_id: str, sha256: str) -> str:
    return f"certificates/{credential_id}/{sha256}.pdf"


@dataclass
class BatchResult:
    """What a batch of render requests came to: announcements in the requests' order, and poison."""

    announcements: list[CertificateRenderedMessage] = field(default_factory=list)
    invalid: list[tuple[int, InvalidMessage]] = field(default_factory=list)


class RendererService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: ObjectStore,
        renderer: CertificateRenderer,
        settings: Settings,
    ):
        self.sessions = sessions
        self.store = store
        self.renderer = renderer
        self.settings = settings

    def handle(self, raw: bytes) -> CertificateRenderedMessage:
        """One request: a batch of one, its poison raised (InvalidMessage) for the dead-letter topic."""
        result = self.handle_batch([raw])
        if result.invalid:
            raise result.invalid[0][1]
        return result.announcements[0]

    def handle_batch(self, raws: Sequence[bytes]) -> BatchResult:
        """Requests to render are laid out together (see CertificateRenderer).

        Unparseable requests and unknown templates come back as poison; any other failure fails the
        whole batch, which the consumer then retries and handles one message at a time. Every failed
        attempt counts as a `failed` render, a retried request again.
        """
        result = BatchResult()
        requests = self._valid_requests(raws, result.invalid)
        metrics.rendered("failed", len(result.invalid))
        if requests:
            result.announcements = self._render_and_store(requests)
        return result

    def _render_and_store(
        self, requests: dict[int, CertificateRenderRequest]
    ) -> list[CertificateRenderedMessage]:
        """Announcements in the requests' order: the stored PDF, or a new one when there is none or the
        request asks for a re-render."""
        with self.sessions() as session:
            repository = CertificateRepository(session)
            stored = {i: repository.latest(r.credential_id) for i, r in requests.items() if not r.rerender}
        to_render = {i: r for i, r in requests.items() if stored.get(i) is None}
        try:
            pdfs = dict(zip(to_render, self.renderer.render_batch(list(to_render.values())), strict=True))
            rows = {i: self._store(to_render[i], pdf) for i, pdf in pdfs.items()}
        except Exception:
            metrics.rendered("failed", len(to_render))
            raise
        metrics.rendered("stored", len(rows))
        metrics.rendered("already_stored", len(requests) - len(rows))
        current = {**{i: row for i, row in stored.items() if row is not None}, **rows}
        return [self._announcement(current[i]) for i in sorted(current)]

    def _valid_requests(
        self, raws: Sequence[bytes], invalid: list[tuple[int, InvalidMessage]]
    ) -> dict[int, CertificateRenderRequest]:
        requests = {}
        for index, raw in enumerate(raws):
            try:
                request = parse_message(CertificateRenderRequestMessage, raw).data
                self.renderer.check_template(request.template)
            except InvalidMessage as exc:
                invalid.append((index, exc))
            except UnknownTemplateError as exc:
                invalid.append((index, InvalidMessage(str(exc))))
            else:
                requests[index] = request
        return requests

    def _store(self, request: CertificateRenderRequest, pdf: bytes) -> CertificateRow:
        digest = sha256_hex(pdf)
        key = object_key(request.credential_id, digest)
        self.store.put(
            key, pdf, "application/pdf", {"credential-id": request.credential_id, "sha256": digest}
        )
        row = CertificateRow(
            credential_id=request.credential_id,
            bucket=self.store.bucket,
            object_key=key,
            sha256=digest,
            size=len(pdf),
            template=request.template,
            rendered_at=datetime.now(UTC),
        )
        return self._record(row)

    def _record(self, row: CertificateRow) -> CertificateRow:
        try:
            with self.sessions.begin() as session:
                CertificateRepository(session).add(row)
            return row
        except IntegrityError:
            # The same bytes are stored already (a concurrent worker, or a re-render back to an earlier
            # template): that version becomes the current one again.
            with self.sessions.begin() as session:
                found = CertificateRepository(session).find(row.credential_id, row.sha256)
                if found is None:
                    raise
                found.rendered_at = row.rendered_at
            return found

    def _announcement(self, row: CertificateRow) -> CertificateRenderedMessage:
        return CertificateRenderedMessage.build(
            id=deterministic_id("certificate.rendered", row.credential_id, row.sha256),
            source=SOURCE,
            subject=row.credential_id,
            time=row.rendered_at,
            data=CertificateRendered.model_validate(row, from_attributes=True),  # the row's own columns
        )
