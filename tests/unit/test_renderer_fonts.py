"""Font programs shared between certificates: the same embedded fonts, the text still real text, other
scripts still covered, and WeasyPrint outside the renderer untouched."""

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


def test_certificates_embed_the_same_font_programs(renderer: CertificateRenderer) -> None:
    polish, english = renderer.render_batch([make_request(), make_request(**ENGLISH)])

    fonts = embedded_fonts(polish)

    assert fonts == embedded_fonts(english)
    assert {"DejaVu-Sans", "DejaVu-Serif"} <= fonts.keys()
    # the shared repertoire, not just the ~50 glyphs one certificate shows
    assert all(drawn_glyphs(program) > 300 for program in fonts.values())


def test_a_name_in_another_script_gets_its_own_subset_and_stays_text(
    renderer: CertificateRenderer, tmp_path: Path
) -> None:
    name = "Олена Шевченко"
    assert not {ord(ch) for ch in name if ch != " "} & REPERTOIRE
    shared = embedded_fonts(renderer.render(make_request()))

    pdf = renderer.render(make_request(learner_name=name))

    assert name in pdf_text(pdf, tmp_path)
    own = embedded_fonts(pdf)
    assert own["DejaVu-Serif-Bold"] != shared["DejaVu-Serif-Bold"]  # the face the name is set in
    assert own["DejaVu-Sans"] == shared["DejaVu-Sans"]  # the other faces still share
    assert renderer.render(make_request(learner_name=name)) == pdf  # still deterministic


def test_weasyprint_outside_the_renderer_subsets_as_usual(renderer: CertificateRenderer) -> None:
    renderer.render(make_request())  # the hook is installed and has been used

    pdf = HTML(string='<p style="font-family: DejaVu Sans">Ab</p>').write_pdf()

    (program,) = embedded_fonts(pdf).values()
    assert drawn_glyphs(program) <= 3  # A, b (and .notdef)
