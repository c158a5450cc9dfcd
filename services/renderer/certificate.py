"""The certificate renderer's pure core: render requests in, one PDF per request out. No Kafka, no S3,
no database.

A batch of requests is laid out as one WeasyPrint document, one page per certificate, and each page is
then written as its own PDF: parsing, the style cascade and the document set-up are paid once per batch.
The output is deterministic: a request gives byte-identical PDF bytes alone or in any batch, in every
call and process, so re-rendering after a crash produces the same content-addressed S3 object.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import pydyf
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from weasyprint import CSS
from weasyprint.document import Document
from weasyprint.text.fonts import FontConfiguration

from schemas.certificates import CertificateRenderRequest

from .fonts import RepertoireFaces, install
from .pages import (
    BATCH_SIZE,
    CSS_FILE,
    HTML_FILE,
    PDF_OPTIONS,
    TEMPLATES_DIR,
    CertificateHTML,
    certificate_metadata,
    credential_attachments,
    declare_pdf_ua,
    deflate_streams,
    pages_html,
    pinned_font_timestamp,
    qr_source,
    sha256_hex,
    template_context,
)
from .qr import QRCodeImage
from .skeleton import Skeletons

__all__ = ["BATCH_SIZE", "CertificateRenderer", "UnknownTemplateError", "sha256_hex"]

# Template names become paths: no dots or slashes, so a request cannot reach outside the templates dir.
_TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class UnknownTemplateError(ValueError):
    """The request names a certificate template that does not exist."""


class CertificateRenderer:
    """Fills Jinja2 HTML templates and prints them to PDF with WeasyPrint. Not thread-safe: one per worker."""

    def __init__(self, templates_dir: Path | None = None, *, fast: bool = True) -> None:
        self.templates_dir = (templates_dir or TEMPLATES_DIR).resolve()
        loader = FileSystemLoader([self.templates_dir, TEMPLATES_DIR])  # DOCUMENT_FILE from ours if not given
        self._env = Environment(loader=loader, autoescape=True, undefined=StrictUndefined)
        # One fontconfig setup per renderer: its font map and caches are reused by every render.
        self._fonts = FontConfiguration()
        self._stylesheets: dict[str, CSS] = {}
        self._faces = RepertoireFaces() if install() else None
        # Certificates that differ from others of their shape only in the learner's fields (skeleton.py).
        self._skeletons = Skeletons(self._lay_out, self._write_page, self._faces) if fast else None

    def render(self, request: CertificateRenderRequest) -> bytes:
        return self.render_batch([request])[0]

    def render_batch(self, requests: Sequence[CertificateRenderRequest]) -> list[bytes]:
        """One PDF per request, in the requests' order; each the same bytes as if rendered alone."""
        pdfs: dict[int, bytes] = {}
        groups: dict[tuple[str, str], list[int]] = {}
        for index, request in enumerate(requests):
            written = self._skeletons.render(request) if self._skeletons is not None else None
            if written is not None:
                pdfs[index] = written
            else:
                groups.setdefault((request.template, request.language), []).append(index)
        for indexes in groups.values():
            for index, pdf in zip(indexes, self._render_group([requests[i] for i in indexes]), strict=True):
                pdfs[index] = pdf
        return [pdfs[index] for index in range(len(requests))]

    @property
    def full_renders(self) -> dict[str, int]:
        """Why certificates were rendered in full rather than from a skeleton, counted."""
        return dict(self._skeletons.full_renders) if self._skeletons is not None else {}

    def _render_group(self, requests: list[CertificateRenderRequest]) -> list[bytes]:
        """Requests of one template and language: laid out together, written one PDF per page."""
        # WeasyPrint looks images up in `cache` first: each QR code is drawn as paths by QRCodeImage.
        images = {qr_source(r.verify_url): QRCodeImage(r.verify_url) for r in requests}
        document = self._lay_out(requests[0], [template_context(r) for r in requests], images)
        if len(document.pages) != len(requests):
            raise RuntimeError(
                f"template {requests[0].template!r} laid out {len(requests)} certificates on "
                f"{len(document.pages)} pages; each must fill exactly one"
            )
        return [
            self._write(document, page, request)
            for page, request in zip(document.pages, requests, strict=True)
        ]

    def _write(self, document: Document, page: Any, request: CertificateRenderRequest) -> bytes:
        with pinned_font_timestamp(request.issued_on):
            return self._write_page(document, page, request, self._finish)

    def _lay_out(
        self, request: CertificateRenderRequest, contexts: list[dict[str, Any]], images: dict[str, Any]
    ) -> Document:
        """Pages with the given template contexts, in the request's template and language."""
        template_dir = self._template_dir(request.template)
        html = CertificateHTML(
            string=pages_html(self._env, request, contexts), base_url=str(template_dir) + "/"
        )
        stylesheet = self._stylesheet(request.template, template_dir)
        return html.render(stylesheets=[stylesheet], font_config=self._fonts, cache=images, **PDF_OPTIONS)

    def _write_page(
        self, document: Document, page: Any, request: CertificateRenderRequest, finisher: Any
    ) -> bytes:
        """One page of `document` as the request's PDF (its metadata and attachment), through `finisher`.
        The skeletons' pages are not pinned to a request's date: a skeleton depends on its shape only."""
        single = document.copy([page])
        single.metadata = certificate_metadata(request)
        with self._small_faces():
            pdf: bytes = single.write_pdf(
                attachments=credential_attachments(request), finisher=finisher, **PDF_OPTIONS
            )
        return pdf

    def _small_faces(self) -> AbstractContextManager[None]:
        return self._faces.active() if self._faces is not None else nullcontext()

    def _finish(self, document: Document, pdf: pydyf.PDF) -> None:
        declare_pdf_ua(document, pdf)
        deflate_streams(pdf)

    def check_template(self, name: str) -> None:
        """Raises UnknownTemplateError unless `name` is one of the templates."""
        self._template_dir(name)

    def _template_dir(self, name: str) -> Path:
        directory = self.templates_dir / name
        if not _TEMPLATE_NAME.fullmatch(name) or not (directory / HTML_FILE).is_file():
            known = ", ".join(self.template_names()) or "none"
            raise UnknownTemplateError(f"unknown certificate template {name!r} (known: {known})")
        return directory

    def _stylesheet(self, name: str, template_dir: Path) -> CSS:
        """Parsed once per template: the CSS is static, only the HTML varies per request."""
        if name not in self._stylesheets:
            self._stylesheets[name] = CSS(filename=str(template_dir / CSS_FILE), font_config=self._fonts)
        return self._stylesheets[name]

    def template_names(self) -> list[str]:
        return sorted(p.parent.name for p in self.templates_dir.glob(f"*/{HTML_FILE}"))
