"""Font subsets per certificate, made from faces cut down to a repertoire: only the glyphs a certificate
shows, the same subsets WeasyPrint makes from the full faces, other scripts still covered, and WeasyPrint
outside the renderer untouched."""

from __future__ import annotations

import io
from pathlib import Path

import pikepdf
import pytest
from fontTools.ttLib import TTFont
from weasyprint import HTML

from services.renderer.certificate import CertificateRenderer
from services.renderer.fonts import REPERTOIRE
from tests.unit.test_certificate import ENGLISH, make_request, pdf_text


def embedded_fonts(pdf: bytes) -> dict[str, bytes]:
    """Font name (without the subset tag) -> the embedded TrueType program."""
    fonts = {}
    with pikepdf.open(io.BytesIO(pdf)) as document:
        for font in document.pages[0].Resources.Font.values():
            descriptor = font.DescendantFonts[0].FontDescriptor
            fonts[str(font.BaseFont).split("+", 1)[1]] = descriptor.FontFile2.read_bytes()
    return fonts


def drawn_glyphs(program: bytes) -> int:
    """Glyphs with an outline (WeasyPrint keeps glyph ids, so unused ones are empty)."""
    glyf = TTFont(io.BytesIO(program))["glyf"]
    return sum(1 for name in glyf if glyf[name].numberOfContours != 0)


@pytest.fixture(scope="module")
def renderer() -> CertificateRenderer:
    return CertificateRenderer()


def test_each_certificate_embeds_only_the_glyphs_it_shows(renderer: CertificateRenderer) -> None:
    polish, english = renderer.render_batch([make_request(), make_request(**ENGLISH)])
    full_faces = CertificateRenderer()
    full_faces._faces = None  # WeasyPrint's own subsetting, from the full faces

    fonts = embedded_fonts(polish)

    assert renderer._faces is not None and len(renderer._faces) >= 5  # made from the small faces
    assert fonts == embedded_fonts(full_faces.render(make_request()))
    assert embedded_fonts(english) == embedded_fonts(full_faces.render(make_request(**ENGLISH)))
    assert embedded_fonts(english) != fonts  # other text, other glyphs
    assert {"DejaVu-Sans", "DejaVu-Serif"} <= fonts.keys()
    assert all(drawn_glyphs(program) < 100 for program in fonts.values())
    assert len(polish) < 40_000 and len(english) < 40_000


def test_a_name_in_another_script_gets_its_own_subset_and_stays_text(
    renderer: CertificateRenderer, tmp_path: Path
) -> None:
    name = "Олена Шевченко"
    assert not {ord(ch) for ch in name if ch != " "} & REPERTOIRE
    # a name outside the repertoire is rendered in full (no skeleton): compare with the full render
    shared = embedded_fonts(CertificateRenderer(fast=False).render(make_request()))

    pdf = renderer.render(make_request(learner_name=name))

    assert name in pdf_text(pdf, tmp_path)
    own = embedded_fonts(pdf)
    assert own["DejaVu-Serif-Bold"] != shared["DejaVu-Serif-Bold"]  # the face the name is set in
    assert own["DejaVu-Sans"] == shared["DejaVu-Sans"]  # the same text in the other faces, same subsets
    assert renderer.render(make_request(learner_name=name)) == pdf  # still deterministic


def test_weasyprint_outside_the_renderer_subsets_as_usual(renderer: CertificateRenderer) -> None:
    renderer.render(make_request())  # the hook is installed and has been used

    pdf = HTML(string='<p style="font-family: DejaVu Sans">Ab</p>').write_pdf()

    (program,) = embedded_fonts(pdf).values()
    assert drawn_glyphs(program) <= 3  # A, b (and .notdef)
