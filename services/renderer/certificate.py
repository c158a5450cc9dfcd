"""The certificate renderer's pure core: a render request in, PDF bytes out. No Kafka, no S3, no database.

The output is deterministic: the same request gives byte-identical PDF bytes in every call and process,
so re-rendering after a crash produces the same content-addressed S3 object.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pikepdf
import qrcode
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from qrcode.constants import ERROR_CORRECT_M
from weasyprint import CSS, HTML, Attachment
from weasyprint.text.fonts import FontConfiguration

from schemas.certificates import CertificateRenderRequest

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
USER_AGENT_CSS = TEMPLATES_DIR / "user-agent.css"
HTML_FILE = "certificate.html"
CREDENTIAL_FILE = "credential.json"
CSS_FILE = "certificate.css"
# Archival (PDF/A-3b: the credential may be attached) and tagged; PDF/UA-1 is declared by declare_pdf_ua.
PDF_VARIANT = "pdf/a-3b"

# Template names become paths: no dots or slashes, so a request cannot reach outside the templates dir.
_TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Certificate of completion",
        "certify": "This is to certify that",
        "completed": "has successfully completed the course",
        "achievement": "and has earned the achievement",
        "date": "Date of issue",
        "code": "Verification code",
        "credential": "Credential ID",
        "signature": "Authorised signature",
        "verify": "Verify at",
        "qr_alt": "QR code linking to the verification page",
        "outcomes": "Learning outcomes",
        "workload": "Workload",
        "ects": "{} ECTS credits",
        "hours": "{} hours",
        "eqf": "EQF level {}",
    },
    "pl": {
        "title": "Zaświadczenie o ukończeniu",
        "certify": "Niniejszym zaświadcza się, że",
        "completed": "ukończył(a) z wynikiem pozytywnym kurs",
        "achievement": "i uzyskał(a) osiągnięcie",
        "date": "Data wydania",
        "code": "Kod weryfikacyjny",
        "credential": "Identyfikator poświadczenia",
        "signature": "Podpis osoby upoważnionej",
        "verify": "Sprawdź autentyczność:",
        "qr_alt": "Kod QR prowadzący do strony weryfikacji",
        "outcomes": "Efekty uczenia się",
        "workload": "Nakład pracy",
        "ects": "{} pkt ECTS",
        "hours": "{} godz.",
        "eqf": "poziom {} ERK",
    },
}

# Own month names instead of the C locale: output must not depend on the host's installed locales.
_MONTHS_EN = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
_MONTHS_PL_GENITIVE = (
    "stycznia", "lutego", "marca", "kwietnia", "maja", "czerwca",
    "lipca", "sierpnia", "września", "października", "listopada", "grudnia",
)


class UnknownTemplateError(ValueError):
    """The request names a certificate template that does not exist."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def format_date(moment: datetime, language: str) -> str:
    """`15 March 2026` / `15 marca 2026 r.` (the date as given, in the request's own time zone)."""
    if language == "pl":
        return f"{moment.day} {_MONTHS_PL_GENITIVE[moment.month - 1]} {moment.year} r."
    return f"{moment.day} {_MONTHS_EN[moment.month - 1]} {moment.year}"


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def w3c_timestamp(moment: datetime) -> str:
    """W3C datetime for the PDF's CreationDate/ModDate."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


_ENV_LOCK = threading.Lock()


@contextmanager
def pinned_font_timestamp(moment: datetime) -> Iterator[None]:
    """Pin the `head.modified` date of the embedded font subsets to `moment`.

    Without libharfbuzz-subset WeasyPrint subsets fonts with fontTools, which stamps the current time
    into every font (so two renders differ) unless SOURCE_DATE_EPOCH is set. The variable is process-wide,
    hence the lock and the restore.
    """
    epoch = str(max(0, int(as_utc(moment).timestamp())))
    with _ENV_LOCK:
        previous = os.environ.get("SOURCE_DATE_EPOCH")
        os.environ["SOURCE_DATE_EPOCH"] = epoch
        try:
            yield
        finally:
            if previous is None:
                del os.environ["SOURCE_DATE_EPOCH"]
            else:
                os.environ["SOURCE_DATE_EPOCH"] = previous


def qr_png(data: str) -> bytes:
    """QR code as PNG: error correction M, 4-module quiet zone, 4 px modules.

    The stylesheet sizes it with `image-rendering: pixelated`. 4 px is the smallest module that still
    scans from a 72 dpi rasterization (tested); larger PNGs only cost encoding and embedding time.
    """
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=4, border=4)
    qr.add_data(data)
    qr.make(fit=True)
    buffer = io.BytesIO()
    qr.make_image().save(buffer)
    return buffer.getvalue()


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def name_size(name: str) -> str:
    """CSS class that shrinks long names so the certificate stays on one page."""
    if len(name) > 48:
        return "name-xl"
    return "name-l" if len(name) > 30 else "name-m"


def declare_pdf_ua(pdf: bytes) -> bytes:
    """Adds the PDF/UA-1 identification to the XMP metadata (WeasyPrint writes one PDF variant's),
    and lists each associated file once.

    The document already meets what PDF/UA asks of it: tagged structure, document language and title
    shown as the window title, alternative text on the QR code, embedded fonts. The file ID is derived
    from the content, so the output stays deterministic.
    """
    with pikepdf.open(io.BytesIO(pdf)) as document:
        with document.open_metadata(set_pikepdf_as_editor=False, update_docinfo=False) as meta:
            meta["pdfuaid:part"] = "1"
        if "/AF" in document.Root:  # WeasyPrint lists each associated file twice
            unique = {f.objgen: f for f in document.Root.AF}
            document.Root.AF = pikepdf.Array(unique.values())
        out = io.BytesIO()
        document.save(out, deterministic_id=True)
    return out.getvalue()


def credential_attachments(request: CertificateRenderRequest) -> list[Attachment]:
    """The signed Open Badges 3.0 credential travels inside the PDF: the certificate verifies offline."""
    if not request.credential_json:
        return []
    return [Attachment(string=request.credential_json, base_url=None, name=CREDENTIAL_FILE,
                       description="Open Badges 3.0 credential (signed, eddsa-rdfc-2022)",
                       relationship="Data", created=request.issued_on, modified=request.issued_on)]


def workload_line(request: CertificateRenderRequest) -> str:
    """`2 ECTS credits · 50 hours · EQF level 4` (the parts the rule states), or empty."""
    labels = LABELS[request.language]
    parts = [labels[key].format(f"{value:g}") for key, value in
             (("ects", request.ects), ("hours", request.hours), ("eqf", request.eqf_level)) if value]
    return " · ".join(parts)


def template_context(request: CertificateRenderRequest) -> dict[str, Any]:
    return {
        "workload": workload_line(request),
        "r": request,
        "labels": LABELS[request.language],
        "issued_date": format_date(request.issued_on, request.language),
        "timestamp": w3c_timestamp(request.issued_on),
        "qr_src": png_data_uri(qr_png(request.verify_url)),
        "name_class": name_size(request.learner_name),
    }


class CertificateHTML(HTML):
    """An HTML document whose browser defaults are the certificate subset in `user-agent.css`.

    `_ua_stylesheets` is WeasyPrint's hook for the user-agent stylesheet (its own subclasses override it
    too); every selector in it is matched against every element of every certificate.
    """

    user_agent_css: CSS | None = None

    def _ua_stylesheets(self, forms: bool = False) -> list[CSS]:
        if CertificateHTML.user_agent_css is None:
            CertificateHTML.user_agent_css = CSS(filename=str(USER_AGENT_CSS))
        return [CertificateHTML.user_agent_css]


class CertificateRenderer:
    """Fills a Jinja2 HTML template and prints it to PDF with WeasyPrint. Not thread-safe: one per worker."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        self.templates_dir = (templates_dir or TEMPLATES_DIR).resolve()
        self._env = Environment(
            loader=FileSystemLoader(self.templates_dir), autoescape=True, undefined=StrictUndefined
        )
        # One fontconfig setup per renderer: its font map and caches are reused by every render.
        self._fonts = FontConfiguration()
        self._stylesheets: dict[str, CSS] = {}

    def render(self, request: CertificateRenderRequest) -> bytes:
        template_dir = self._template_dir(request.template)
        html = self._env.get_template(f"{request.template}/{HTML_FILE}").render(template_context(request))
        document = CertificateHTML(string=html, base_url=str(template_dir) + "/")
        stylesheet = self._stylesheet(request.template, template_dir)
        with pinned_font_timestamp(request.issued_on):
            pdf: bytes = document.write_pdf(stylesheets=[stylesheet], font_config=self._fonts,
                                            attachments=credential_attachments(request),
                                            pdf_variant=PDF_VARIANT, pdf_tags=True)
        return declare_pdf_ua(pdf)

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
