"""What a certificate page shows, and how WeasyPrint is asked to lay it out and write it: the labels, the
template context of a request, the PDF's metadata and attachment, the user-agent stylesheet and the
finishers. Shared by the full render (`certificate.py`) and the skeletons (`skeleton.py`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydyf
from jinja2 import Environment
from markupsafe import Markup
from weasyprint import CSS, HTML, Attachment
from weasyprint.document import Document, DocumentMetadata

from ebackpack.domain import i18n
from ebackpack.plurals import ECTS_CREDITS, HOURS, quantity
from schemas.certificates import CertificateRenderRequest

from .qr import qr_svg, svg_data_uri

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
USER_AGENT_CSS = TEMPLATES_DIR / "user-agent.css"
HTML_FILE = "certificate.html"
# The renderer's own page around the templates' certificates: one page per certificate of a batch.
DOCUMENT_FILE = "document.html"
CREDENTIAL_FILE = "credential.json"
CSS_FILE = "certificate.css"
# Archival (PDF/A-3b: the credential may be attached) and tagged; PDF/UA-1 is declared by declare_pdf_ua.
PDF_VARIANT = "pdf/a-3b"
# Certificates laid out as one document: most of the saving comes with the first few (see bench/README.md).
BATCH_SIZE = 8
# zlib level of the streams the renderer deflates: level 9 took ~3 ms per certificate for files ~4 %
# smaller than level 6 (~1 ms).
DEFLATE_LEVEL = 6
PDF_OPTIONS: dict[str, Any] = {"pdf_variant": PDF_VARIANT, "pdf_tags": True}
XMP_PDF_UA = (
    b'<rdf:Description xmlns:pdfuaid="http://www.aiim.org/pdfua/ns/id/" rdf:about="" pdfuaid:part="1"/>'
)

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
        "eqf": "poziom {} ERK",
    },
}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def format_date(moment: datetime, language: str) -> str:
    """`15 March 2026` / `15 marca 2026 r.` (the date as given, in the request's own time zone)."""
    written = i18n.format_date(moment, language)
    return f"{written} r." if language == "pl" else written


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


@functools.lru_cache(maxsize=64)
def qr_source(verify_url: str) -> str:
    """The `<img>` address of the QR code: an SVG data URI (the renderer draws a QRCodeImage for it)."""
    return svg_data_uri(qr_svg(verify_url))


def name_size(name: str) -> str:
    """CSS class that shrinks long names so the certificate stays on one page."""
    if len(name) > 48:
        return "name-xl"
    return "name-l" if len(name) > 30 else "name-m"


def declare_pdf_ua(document: Document, pdf: pydyf.PDF) -> None:
    """WeasyPrint finisher: adds the PDF/UA-1 identification to the XMP metadata (WeasyPrint writes one
    PDF variant's), and lists each associated file once (WeasyPrint lists each twice).

    The document already meets what PDF/UA asks of it: tagged structure, document language and title
    shown as the window title, alternative text on the QR code, embedded fonts.
    """
    metadata = pdf.objects[int(pdf.catalog["Metadata"].split()[0])]
    metadata.stream = [chunk.replace(b"</rdf:RDF>", XMP_PDF_UA + b"</rdf:RDF>") for chunk in metadata.stream]
    if "AF" in pdf.catalog:
        pdf.catalog["AF"] = pydyf.Array(dict.fromkeys(pdf.catalog["AF"]))


def deflate_streams(pdf: pydyf.PDF) -> None:
    """WeasyPrint finisher: deflates each stream once, here, at DEFLATE_LEVEL.

    pydyf deflates every stream when it writes it, and again to hash the file ID; the bytes are the
    same, so the second time is wasted work.
    """
    for pdf_object in pdf.objects:
        if not isinstance(pdf_object, pydyf.Stream) or not pdf_object.compress:
            continue
        if not all(isinstance(item, bytes) for item in pdf_object.stream):
            continue  # left to pydyf, which knows how to serialize other items
        data = pdf_object.stream[0] if len(pdf_object.stream) == 1 else b"\n".join(pdf_object.stream)
        pdf_object.stream = [zlib.compress(data, DEFLATE_LEVEL)]
        pdf_object.compress = False
        pdf_object.extra["Filter"] = "/FlateDecode"


def certificate_metadata(request: CertificateRenderRequest) -> DocumentMetadata:
    """The PDF's title (shown as the window title), author, subject, keywords, dates and language.

    The dates are the request's: WeasyPrint would otherwise stamp the current time into the PDF.
    """
    labels = LABELS[request.language]
    stamp = w3c_timestamp(request.issued_on)
    return DocumentMetadata(
        title=f"{labels['title']}: {request.learner_name} – {request.course_name}",
        authors=[request.awarding_body],
        description=f"{request.achievement_name} ({labels['code']} {request.verification_code})",
        keywords=[request.credential_id],
        created=stamp,
        modified=stamp,
        lang=request.language,
    )


def credential_attachments(request: CertificateRenderRequest) -> list[Attachment]:
    """The signed Open Badges 3.0 credential travels inside the PDF: the certificate verifies offline."""
    if not request.credential_json:
        return []
    return [
        Attachment(
            string=request.credential_json,
            base_url=None,
            name=CREDENTIAL_FILE,
            description="Open Badges 3.0 credential (signed, eddsa-rdfc-2022)",
            relationship="Data",
            created=request.issued_on,
            modified=request.issued_on,
        )
    ]


def workload_line(request: CertificateRenderRequest) -> str:
    """`2 ECTS credits · 1 hour · EQF level 4`, `2,5 pkt ECTS · 22 godziny` (the parts the rule states,
    nouns in the plural form the number needs), or empty."""
    lang = request.language
    parts = [
        quantity(value, forms, lang)
        for value, forms in ((request.ects, ECTS_CREDITS), (request.hours, HOURS))
        if value
    ]
    if request.eqf_level:
        parts.append(LABELS[lang]["eqf"].format(request.eqf_level))
    return " · ".join(parts)


def template_context(request: CertificateRenderRequest) -> dict[str, Any]:
    """What a template's `certificate.html` sees."""
    return {
        "workload": workload_line(request),
        "r": request,
        "labels": LABELS[request.language],
        "issued_date": format_date(request.issued_on, request.language),
        "qr_src": qr_source(request.verify_url),
        "name_class": name_size(request.learner_name),
    }


def document_html(env: Environment, requests: Sequence[CertificateRenderRequest]) -> str:
    """One HTML document holding each request's certificate on its own page (same template and language).

    Its head carries the first certificate's metadata, so a one-certificate document is a complete PDF
    source on its own; the renderer sets each page's metadata itself.
    """
    return pages_html(env, requests[0], [template_context(request) for request in requests])


def pages_html(env: Environment, first: CertificateRenderRequest, contexts: Sequence[dict[str, Any]]) -> str:
    """One page per template context, in the template and language of `first`, with its metadata."""
    template = env.get_template(f"{first.template}/{HTML_FILE}")
    pages = [Markup(template.render(context)) for context in contexts]
    return env.get_template(DOCUMENT_FILE).render(
        language=first.language, meta=certificate_metadata(first), pages=pages
    )


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
