"""Certificates written from a skeleton look and read as the full WeasyPrint render of the same request,
are the same bytes whichever certificate of the shape came first, and anything the skeleton was not
checked for is rendered in full."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pikepdf
import pytest
from PIL import Image, ImageChops

from schemas.certificates import CertificateRenderRequest
from services.renderer.certificate import CertificateRenderer
from tests.unit.test_certificate import CREDENTIAL, ENGLISH, make_request, pdf_text

# Names of every size class, with the letters that kern, ligate and descend.
NAMES = [
    "Zofia Wiśniewska-Żółkiewska",
    "Jo Fi",
    "Małgorzata Aleksandra Nowakowska",  # name-l
    "Zażółć Gęślą-Jaźń Wielkopolska-Świętokrzyska Ffion Affleck",  # name-xl
]
SHAPES = [
    {},
    ENGLISH,
    {"template": "formal"},
    {**ENGLISH, "template": "formal"},
    {"credential_json": None, "learning_outcomes": [], "ects": None, "hours": None, "eqf_level": None},
]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian: poppler-utils, qpdf)")
    return path


def page_image(pdf: bytes, tmp_path: Path, name: str) -> Image.Image:
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(pdf)
    subprocess.run([need("pdftoppm"), "-r", "100", "-png", "-singlefile", path, tmp_path / name], check=True)
    return Image.open(tmp_path / f"{name}.png").convert("RGB")


def differing_share(first: Image.Image, second: Image.Image) -> float:
    """The share of pixels whose largest channel difference exceeds 16/255."""
    assert first.size == second.size
    difference = ImageChops.difference(first, second).convert("L").point(lambda value: 255 * (value > 16))
    histogram = difference.histogram()
    return histogram[255] / (first.size[0] * first.size[1])


@pytest.fixture(scope="module")
def renderer() -> CertificateRenderer:
    return CertificateRenderer()


@pytest.fixture(scope="module")
def full() -> CertificateRenderer:
    return CertificateRenderer(fast=False)


def written_from_skeleton(renderer: CertificateRenderer, request: CertificateRenderRequest) -> bytes:
    before = sum(renderer.full_renders.values())
    pdf = renderer.render(request)
    assert sum(renderer.full_renders.values()) == before, renderer.full_renders
    return pdf


def one_line(shape: dict[str, object], name: str) -> bool:
    """Whether the full render prints the name on one line (the formal template wraps long names)."""
    return shape.get("template") != "formal" or name in NAMES[:3]


@pytest.mark.parametrize("shape", SHAPES, ids=["pl", "en", "formal-pl", "formal-en", "bare"])
@pytest.mark.parametrize("name", NAMES, ids=["m", "short", "l", "xl"])
def test_a_skeleton_certificate_looks_and_reads_as_the_full_render(
    renderer: CertificateRenderer,
    full: CertificateRenderer,
    shape: dict[str, object],
    name: str,
    tmp_path: Path,
) -> None:
    request = make_request(**{**shape, "learner_name": name})
    fast_pdf = written_from_skeleton(renderer, request) if one_line(shape, name) else renderer.render(request)
    full_pdf = full.render(request)
    assert (
        differing_share(page_image(fast_pdf, tmp_path, "fast"), page_image(full_pdf, tmp_path, "full"))
        < 0.001
    )
    assert pdf_text(fast_pdf, tmp_path) == pdf_text(full_pdf, tmp_path)  # the same words in the same order
    (tmp_path / "check.pdf").write_bytes(fast_pdf)
    subprocess.run([need("qpdf"), "--check", tmp_path / "check.pdf"], check=True, capture_output=True)
    with pikepdf.open(io.BytesIO(fast_pdf)) as pdf, pikepdf.open(io.BytesIO(full_pdf)) as reference:
        assert pdf.open_metadata()["dc:title"] == reference.open_metadata()["dc:title"]
        assert str(pdf.docinfo.Title) == str(reference.docinfo.Title)
        assert str(pdf.trailer.Info.Keywords) == request.credential_id
        attached = {name: spec.get_file().read_bytes() for name, spec in pdf.attachments.items()}
        assert attached == (
            {"credential.json": request.credential_json.encode()} if request.credential_json else {}
        )
        assert structure(pdf) == structure(reference)


def structure(pdf: pikepdf.Pdf) -> list[str]:
    """The tag tree's element types in reading order, with each figure's alternative text."""
    found: list[str] = []

    def walk(node: pikepdf.Object) -> None:
        if isinstance(node, pikepdf.Array):
            for child in node:
                walk(child)
        elif isinstance(node, pikepdf.Dictionary) and "/S" in node:
            found.append(str(node.S) + (f" {node.Alt}" if "/Alt" in node else ""))
            if "/K" in node:
                walk(node.K)

    walk(pdf.Root.StructTreeRoot.K)
    return found


def test_the_bytes_do_not_depend_on_which_certificate_of_the_shape_came_first() -> None:
    first, second = (
        make_request(),
        make_request(learner_name="Jan Kowalski", verification_code="AB12-CD34-EF56"),
    )
    one, other = CertificateRenderer(), CertificateRenderer()
    assert one.render(first) == other.render_batch([second, first])[1]
    assert one.render(second) == other.render(second)
    assert one.full_renders == other.full_renders == {}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Дмитрий Шостакович", "the name holds characters the skeleton does not handle"),
        ("Anna  Nowak", "the name holds characters the skeleton does not handle"),
        ("Wolfeschlegelsteinhausenbergerdorff" * 3, "the name is wider than the skeleton was checked for"),
    ],
    ids=["cyrillic", "double-space", "too-wide"],
)
def test_what_a_skeleton_was_not_checked_for_is_rendered_in_full(
    full: CertificateRenderer, name: str, reason: str, tmp_path: Path
) -> None:
    renderer = CertificateRenderer()
    request = make_request(learner_name=name)
    pdf = renderer.render(request)
    assert renderer.full_renders == {reason: 1}
    assert pdf == full.render(request)
    assert pdf_text(pdf, tmp_path).startswith(pdf_text(full.render(request), tmp_path))


def test_a_template_whose_fields_are_not_plain_lines_is_rendered_in_full(tmp_path: Path) -> None:
    template = tmp_path / "shouting"
    shutil.copytree(Path("services/renderer/templates/default"), template)
    css = template / "certificate.css"
    css.write_text(css.read_text() + "\n.learner { text-transform: uppercase; }\n")
    renderer = CertificateRenderer(templates_dir=tmp_path)
    pdf = renderer.render(make_request(template="shouting"))
    assert "ZOFIA WIŚNIEWSKA-ŻÓŁKIEWSKA" in pdf_text(pdf, tmp_path)
    assert any(reason.startswith("shape: ") for reason in renderer.full_renders), renderer.full_renders


def test_the_skeleton_keeps_the_credential_and_metadata_of_each_learner() -> None:
    renderer = CertificateRenderer()
    requests = [
        make_request(
            learner_name=f"Uczeń {number}", credential_json=CREDENTIAL.replace("Pierwsza", f"Nr {number}")
        )
        for number in range(3)
    ]
    for request, pdf_bytes in zip(requests, renderer.render_batch(requests), strict=True):
        with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
            assert pdf.open_metadata()["dc:title"].endswith(f"{request.learner_name} – {request.course_name}")
            assert (
                pdf.attachments["credential.json"].get_file().read_bytes() == request.credential_json.encode()
            )
    assert renderer.full_renders == {}
