"""A PDF whose attached credential decides the status is not rendered: its pages, however costly to
draw, are never handed to poppler."""

from __future__ import annotations

import io
from pathlib import Path

import pikepdf
import pytest

from services.importer.domain import ImportContext, ImportRejected, Learner, SourceFormat, VerificationStatus
from services.importer.pipeline import import_bytes

EXTERNAL = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "external"
CONTEXT = ImportContext(learner=Learner(email="learner@example.org"))


def nested_pages_pdf(attachment: bytes | None) -> bytes:
    """Page -> form drawn 8 times -> ... 12 levels deep: poppler would draw 8^12 forms."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(200, 200))
    inner: pikepdf.Object | None = None
    for _ in range(12):
        body = b"0 0 1 1 re f" if inner is None else b" ".join([b"q 0.9 0 0 0.9 1 1 cm /X Do Q"] * 8)
        form = pdf.make_indirect(pikepdf.Stream(pdf, body))
        form.Type, form.Subtype, form.BBox = pikepdf.Name.XObject, pikepdf.Name.Form, [0, 0, 200, 200]
        form.Resources = (
            pikepdf.Dictionary(XObject=pikepdf.Dictionary(X=inner))
            if inner is not None
            else pikepdf.Dictionary()
        )
        inner = form
    pdf.pages[0].Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(X=inner))
    pdf.pages[0].Contents = pdf.make_stream(b"/X Do")
    if attachment is not None:
        pdf.attachments["credential.json"] = pikepdf.AttachedFileSpec(pdf, attachment)
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


@pytest.mark.timeout(60)
def test_the_attached_credential_decides_and_the_pages_are_not_rendered() -> None:
    credential = (EXTERNAL / "ob3-1edtech" / "simple.json").read_bytes()

    attestation = import_bytes(nested_pages_pdf(credential), CONTEXT)

    assert attestation.source_format is SourceFormat.PDF
    assert attestation.verification.status is VerificationStatus.ISSUER_UNKNOWN
    assert attestation.verification.method.startswith("credential attached to the PDF")


@pytest.mark.timeout(60)
def test_without_an_attachment_the_pages_are_read_within_poppler_limits() -> None:
    with pytest.raises(ImportRejected, match="pdftotext took longer than"):
        import_bytes(nested_pages_pdf(None), CONTEXT)
