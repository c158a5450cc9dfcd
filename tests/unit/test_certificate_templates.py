"""Every certificate template, in both languages: one archival page with the learner's text in reading
order and a QR code that scans. New templates under services/renderer/templates/ are covered as they come."""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pikepdf
import pytest

from services.renderer.certificate import CertificateRenderer
from tests.conftest import require_tool
from tests.unit.test_certificate import ENGLISH, VERIFY_URL, make_request

TEMPLATES = CertificateRenderer().template_names()
LANGUAGES = ["pl", "en"]
LONG_NAME = "Małgorzata Aleksandra Brzęczyszczykiewicz-Żółtowska-Ślęzak"


@dataclass(frozen=True)
class Rendered:
    template: str
    language: str
    pdf: bytes
    path: Path
    learner_name: str
    course_name: str
    verification_code: str


def run(*args: str | Path) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True).stdout


def pdf_text(path: Path) -> str:
    """pdftotext output with whitespace collapsed (names may wrap)."""
    return " ".join(run(require_tool("pdftotext"), "-enc", "UTF-8", path, "-").split())


def pdf_info(path: Path) -> dict[str, str]:
    lines = run(require_tool("pdfinfo"), "-enc", "UTF-8", path).splitlines()
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in lines)}


@pytest.fixture(scope="module")
def renderer() -> CertificateRenderer:
    return CertificateRenderer()


@pytest.fixture(
    scope="module",
    params=[(t, lang) for t in TEMPLATES for lang in LANGUAGES],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def rendered(
    request: pytest.FixtureRequest, renderer: CertificateRenderer, tmp_path_factory: pytest.TempPathFactory
) -> Rendered:
    """Each (template, language) rendered once per module; the tests below only read it."""
    template, language = request.param
    changes: dict[str, object] = dict(ENGLISH) if language == "en" else {}
    certificate = make_request(template=template, **changes)
    pdf = renderer.render(certificate)
    path = tmp_path_factory.mktemp(f"{template}-{language}") / "certificate.pdf"
    path.write_bytes(pdf)
    return Rendered(
        template,
        language,
        pdf,
        path,
        certificate.learner_name,
        certificate.course_name,
        certificate.verification_code,
    )


def test_one_page(rendered: Rendered) -> None:
    assert pdf_info(rendered.path)["Pages"] == "1"


def test_identified_as_pdf_a_3b(rendered: Rendered) -> None:
    with pikepdf.open(io.BytesIO(rendered.pdf)) as pdf:
        meta = pdf.open_metadata()
        assert (meta["pdfaid:part"], meta["pdfaid:conformance"]) == ("3", "B")
        assert str(pdf.Root.Lang) == rendered.language


def test_name_course_and_code_in_reading_order(rendered: Rendered) -> None:
    text = pdf_text(rendered.path)
    positions = [
        text.find(part) for part in (rendered.learner_name, rendered.course_name, rendered.verification_code)
    ]
    assert -1 not in positions, text
    assert positions == sorted(positions), text


@pytest.mark.parametrize("dpi", [72, 150])
def test_qr_code_decodes_to_the_verify_url(rendered: Rendered, tmp_path: Path, dpi: int) -> None:
    zbarimg = require_tool("zbarimg")
    run(require_tool("pdftoppm"), "-png", "-r", str(dpi), "-singlefile", rendered.path, tmp_path / "page")
    # zbarimg prints one line per symbol found; stderr may carry unrelated D-Bus noise.
    assert run(zbarimg, "--raw", "-q", tmp_path / "page.png").splitlines() == [VERIFY_URL]


def figure_rectangles_mm(pdf: bytes) -> list[tuple[float, float]]:
    """Page x coordinates (mm) of the corners of every rectangle drawn inside the page's Figure (the QR
    code's marked content), following the content stream's transformations."""
    xs: list[tuple[float, float]] = []
    with pikepdf.open(io.BytesIO(pdf)) as document:
        ctm, saved, marked, figure_at = pikepdf.Matrix(), [], 0, None
        for instruction in pikepdf.parse_content_stream(document.pages[0]):
            operands, op = instruction.operands, str(instruction.operator)
            if op == "q":
                saved.append(ctm)
            elif op == "Q":
                ctm = saved.pop()
            elif op == "cm":
                ctm = pikepdf.Matrix(*(float(v) for v in operands)) @ ctm
            elif op in ("BDC", "BMC"):
                marked += 1
                if figure_at is None and str(operands[0]) == "/Figure":
                    figure_at = marked
            elif op == "EMC":
                figure_at = None if figure_at == marked else figure_at
                marked -= 1
            elif op == "re" and figure_at is not None:
                x, y, w, h = (float(v) for v in operands)
                left, _ = ctm.transform((x, y))
                right, _ = ctm.transform((x + w, y + h))
                xs.append((left / 72 * 25.4, right / 72 * 25.4))
    return xs


def test_qr_code_is_vector_and_at_least_42_mm_wide(rendered: Rendered) -> None:
    """The QR code is drawn as paths (sharp at any zoom); the page has no raster image at all."""
    assert run(require_tool("pdfimages"), "-list", rendered.path).splitlines()[2:] == []
    rectangles = figure_rectangles_mm(rendered.pdf)
    assert len(rectangles) > 100  # the white square and the runs of dark modules
    left = min(min(pair) for pair in rectangles)
    right = max(max(pair) for pair in rectangles)
    assert right - left >= 41.5  # the code's white square, quiet zone included


@pytest.mark.parametrize("template", TEMPLATES)
def test_long_polish_name_stays_on_one_page(
    renderer: CertificateRenderer, template: str, tmp_path: Path
) -> None:
    path = tmp_path / "long.pdf"
    path.write_bytes(renderer.render(make_request(template=template, learner_name=LONG_NAME)))
    assert pdf_info(path)["Pages"] == "1"
    assert LONG_NAME in pdf_text(path)  # whole, diacritics intact, not split inside a word


def test_formal_is_a4_portrait(renderer: CertificateRenderer, tmp_path: Path) -> None:
    path = tmp_path / "formal.pdf"
    path.write_bytes(renderer.render(make_request(template="formal")))
    # "Page size:       595.276 x 841.89 pts (A4)"
    width, _, height = pdf_info(path)["Page size"].split()[:3]
    assert float(width) < float(height)
