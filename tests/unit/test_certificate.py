"""The certificate renderer's pure core: real WeasyPrint PDFs, checked with poppler and zbar."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pikepdf
import pytest

from schemas.certificates import CertificateRenderRequest
from services.renderer.certificate import CertificateRenderer, UnknownTemplateError, sha256_hex

VERIFY_URL = "http://127.0.0.1:8000/verify/7KQM-C4XA-P9RT"
CREDENTIAL = '{"type": ["VerifiableCredential", "OpenBadgeCredential"], "name": "Pierwsza pomoc"}'


def make_request(**changes: object) -> CertificateRenderRequest:
    fields: dict[str, object] = {
        "credential_id": "0b6a3f0e-6a4e-5c1d-9a57-3c1e4d2f8a11",
        "verification_code": "7KQM-C4XA-P9RT",
        "verify_url": VERIFY_URL,
        "learner_name": "Zofia Wiśniewska-Żółkiewska",
        "course_name": "Pierwsza pomoc przedmedyczna dla dorosłych",
        "achievement_name": "Pierwsza pomoc przedmedyczna",
        "achievement_description": "Udziela pierwszej pomocy zgodnie z aktualnymi wytycznymi.",
        "issued_on": datetime(2026, 3, 15, 10, 30, tzinfo=UTC),
        "awarding_body": "Stowarzyszenie Edukacji Dorosłych",
        "language": "pl",
        "learning_outcomes": [
            "Ocenia bezpieczeństwo miejsca zdarzenia i wzywa pomoc.",
            "Prowadzi resuscytację krążeniowo-oddechową dorosłego z użyciem AED.",
        ],
        "ects": 2,
        "hours": 16,
        "eqf_level": 4,
        "credential_json": CREDENTIAL,
    }
    fields.update(changes)
    return CertificateRenderRequest.model_validate(fields)


ENGLISH = {
    "learner_name": "Grzegorz Brzęczyszczykiewicz",
    "course_name": "Python Basics for Adult Learners",
    "achievement_name": "Python Basics",
    "achievement_description": "Writes, tests and documents small Python programs.",
    "language": "en",
    "learning_outcomes": ["Writes small Python programs with functions and modules."],
    "ects": 2.5,
    "hours": 50,
    "eqf_level": None,
}


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian: poppler-utils / zbar-tools)")
    return path


def run(*args: str | Path) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True).stdout


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    """pdftotext output with whitespace collapsed (names may wrap or be laid out in columns)."""
    path = tmp_path / "cert.pdf"
    path.write_bytes(pdf)
    return " ".join(run(need("pdftotext"), "-enc", "UTF-8", path, "-").split())


def pdf_info(pdf: bytes, tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "info.pdf"
    path.write_bytes(pdf)
    lines = run(need("pdfinfo"), "-isodates", "-enc", "UTF-8", path).splitlines()
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in lines)}


@pytest.fixture(scope="module")
def renderer() -> CertificateRenderer:
    return CertificateRenderer()


@pytest.fixture(scope="module")
def polish_pdf(renderer: CertificateRenderer) -> bytes:
    return renderer.render(make_request())


@pytest.fixture(scope="module")
def english_pdf(renderer: CertificateRenderer) -> bytes:
    return renderer.render(make_request(**ENGLISH))


def test_render_returns_a_one_page_pdf(polish_pdf: bytes, tmp_path: Path) -> None:
    assert polish_pdf.startswith(b"%PDF-")
    assert pdf_info(polish_pdf, tmp_path)["Pages"] == "1"


def test_text_has_name_course_and_code_with_diacritics(polish_pdf: bytes, tmp_path: Path) -> None:
    text = pdf_text(polish_pdf, tmp_path)
    assert "Zofia Wiśniewska-Żółkiewska" in text
    assert "Pierwsza pomoc przedmedyczna dla dorosłych" in text
    assert "7KQM-C4XA-P9RT" in text
    assert "Stowarzyszenie Edukacji Dorosłych" in text


def test_english_learner_name_with_diacritics(english_pdf: bytes, tmp_path: Path) -> None:
    text = pdf_text(english_pdf, tmp_path)
    assert "Grzegorz Brzęczyszczykiewicz" in text
    assert "Python Basics for Adult Learners" in text


@pytest.mark.parametrize("dpi", [72, 150])
def test_qr_code_decodes_to_the_verify_url(polish_pdf: bytes, tmp_path: Path, dpi: int) -> None:
    zbarimg = need("zbarimg")
    pdf = tmp_path / "cert.pdf"
    pdf.write_bytes(polish_pdf)
    run(need("pdftoppm"), "-png", "-r", str(dpi), "-singlefile", pdf, tmp_path / "page")
    # zbarimg prints one line per symbol found; stderr may carry unrelated D-Bus noise.
    assert run(zbarimg, "--raw", "-q", tmp_path / "page.png").splitlines() == [VERIFY_URL]


def test_polish_labels_and_date(polish_pdf: bytes, tmp_path: Path) -> None:
    text = pdf_text(polish_pdf, tmp_path)
    for label in ("Zaświadczenie o ukończeniu", "Kod weryfikacyjny", "Data wydania", "15 marca 2026 r."):
        assert label.casefold() in text.casefold()  # some labels are set in capitals by the CSS
    assert f"Sprawdź autentyczność: {VERIFY_URL}" in text
    assert "Certificate of completion" not in text


def test_english_labels_and_date(english_pdf: bytes, tmp_path: Path) -> None:
    text = pdf_text(english_pdf, tmp_path)
    for label in ("Certificate of completion", "Verification code", "Date of issue", "15 March 2026"):
        assert label.casefold() in text.casefold()
    assert f"Verify at {VERIFY_URL}" in text
    assert "Zaświadczenie" not in text


def test_metadata_comes_from_the_request(polish_pdf: bytes, tmp_path: Path) -> None:
    info = pdf_info(polish_pdf, tmp_path)
    assert info["CreationDate"] == info["ModDate"] == "2026-03-15T10:30:00Z"
    assert info["Title"].startswith("Zaświadczenie o ukończeniu: Zofia Wiśniewska-Żółkiewska")
    assert info["Author"] == "Stowarzyszenie Edukacji Dorosłych"


def test_two_renders_are_byte_identical(renderer: CertificateRenderer, polish_pdf: bytes) -> None:
    time.sleep(1.1)  # font subsetting once stamped the current second into the PDF
    assert renderer.render(make_request()) == polish_pdf
    assert CertificateRenderer().render(make_request()) == polish_pdf


def test_identical_across_processes(polish_pdf: bytes) -> None:
    script = (
        "import sys; from schemas.certificates import CertificateRenderRequest as R;"
        "from services.renderer.certificate import CertificateRenderer, sha256_hex;"
        "print(sha256_hex(CertificateRenderer().render(R.model_validate_json(sys.stdin.read()))))"
    )
    request = make_request().model_dump_json()
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    digests = {
        subprocess.run(
            [sys.executable, "-c", script], input=request, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert digests == {sha256_hex(polish_pdf)}


def test_different_requests_give_different_pdfs(renderer: CertificateRenderer, polish_pdf: bytes) -> None:
    assert renderer.render(make_request(verification_code="9XYZ-C4XA-P9RT")) != polish_pdf


def test_long_texts_stay_on_one_page(renderer: CertificateRenderer, tmp_path: Path) -> None:
    pdf = renderer.render(
        make_request(
            learner_name="Maria Konstancja Brzęczyszczykiewicz-Wiśniewska-Żółkiewska",
            course_name=(
                "Pierwsza pomoc przedmedyczna dla dorosłych z elementami ratownictwa wodnego i górskiego"
            ),
            achievement_description="Udziela pierwszej pomocy zgodnie z aktualnymi wytycznymi. " * 3,
            verify_url="https://certificates.stowarzyszenie-edukacji-doroslych.example.org/verify/7KQM-C4XA-P9RT",
        )
    )
    assert pdf_info(pdf, tmp_path)["Pages"] == "1"


def test_markup_in_names_is_escaped(renderer: CertificateRenderer, tmp_path: Path) -> None:
    pdf = renderer.render(make_request(learner_name="Anna <b>Nowak</b> & Co"))
    assert "Anna <b>Nowak</b> & Co" in pdf_text(pdf, tmp_path)


@pytest.mark.parametrize("name", ["fancy", "../default", "default/../default", ""])
def test_unknown_template_raises_a_clear_error(renderer: CertificateRenderer, name: str) -> None:
    with pytest.raises(UnknownTemplateError, match=r"unknown certificate template .*known: default"):
        renderer.render(make_request(template=name))


def test_unknown_template_error_is_a_value_error() -> None:
    assert issubclass(UnknownTemplateError, ValueError)


def test_sha256_hex() -> None:
    assert sha256_hex(b"") == hashlib.sha256(b"").hexdigest()
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_archival_and_accessible_structure(polish_pdf: bytes, tmp_path: Path) -> None:
    """PDF/A-3b and PDF/UA-1 identification, tags, language, title and the credential as associated file."""
    with pikepdf.open(io.BytesIO(polish_pdf)) as pdf:
        root = pdf.Root
        meta = pdf.open_metadata()
        assert (meta["pdfaid:part"], meta["pdfaid:conformance"], meta["pdfuaid:part"]) == ("3", "B", "1")
        assert meta["dc:title"].startswith("Zaświadczenie o ukończeniu: Zofia Wiśniewska-Żółkiewska")
        assert str(root.Lang) == "pl"
        assert bool(root.MarkInfo.Marked) and "/StructTreeRoot" in root
        assert bool(root.ViewerPreferences.DisplayDocTitle)
        assert len(root.OutputIntents) == 1
        (associated,) = list(root.AF)
        assert str(associated.F) == "credential.json" and str(associated.AFRelationship) == "/Data"
        assert associated.EF.F.read_bytes().decode() == CREDENTIAL
        assert "credential.json" in pdf.attachments
    info = pdf_info(polish_pdf, tmp_path)
    assert info["Tagged"] == "yes" and info["Pages"] == "1"
    path = tmp_path / "check.pdf"
    path.write_bytes(polish_pdf)
    assert "No syntax or stream encoding errors" in run(need("qpdf"), "--check", path)


def test_text_comes_out_in_reading_order(polish_pdf: bytes, tmp_path: Path) -> None:
    text = pdf_text(polish_pdf, tmp_path)
    order = [
        text.index(part)
        for part in (
            "Zaświadczenie o ukończeniu",
            "Zofia Wiśniewska-Żółkiewska",
            "Pierwsza pomoc przedmedyczna dla dorosłych",
            "Efekty uczenia się",
            "7KQM-C4XA-P9RT",
        )
    ]
    assert order == sorted(order)


def test_learning_outcomes_and_workload_in_the_learners_language(
    polish_pdf: bytes, english_pdf: bytes, tmp_path: Path
) -> None:
    polish = pdf_text(polish_pdf, tmp_path)
    assert "Prowadzi resuscytację krążeniowo-oddechową dorosłego z użyciem AED." in polish
    assert "Nakład pracy: 2 pkt ECTS · 16 godzin · poziom 4 ERK" in polish
    english = pdf_text(english_pdf, tmp_path)
    assert "Learning outcomes" in english and "Writes small Python programs" in english
    assert "Workload: 2.5 ECTS credits · 50 hours" in english and "EQF" not in english


# (language, ECTS, hours, the workload line as printed): Polish has one/few/many forms for whole numbers
# (1 godzina, 2-4 and 22-24 godziny, 5-21 and 25 godzin, 12-14 always godzin) and one more for fractions.
WORKLOADS = [
    ("pl", 1, 1, "Nakład pracy: 1 pkt ECTS · 1 godzina"),
    ("pl", 2, 2, "Nakład pracy: 2 pkt ECTS · 2 godziny"),
    ("pl", 3, 5, "Nakład pracy: 3 pkt ECTS · 5 godzin"),
    ("pl", 0.5, 12, "Nakład pracy: 0,5 pkt ECTS · 12 godzin"),
    ("pl", 4, 22, "Nakład pracy: 4 pkt ECTS · 22 godziny"),
    ("pl", 5, 25, "Nakład pracy: 5 pkt ECTS · 25 godzin"),
    ("pl", 2.5, 1.5, "Nakład pracy: 2,5 pkt ECTS · 1,5 godziny"),
    ("pl", None, 114, "Nakład pracy: 114 godzin"),
    ("en", 1, 1, "Workload: 1 ECTS credit · 1 hour"),
    ("en", 2, 2, "Workload: 2 ECTS credits · 2 hours"),
    ("en", 1.5, 0.5, "Workload: 1.5 ECTS credits · 0.5 hours"),
]


def test_workload_nouns_agree_with_their_numbers(renderer: CertificateRenderer, tmp_path: Path) -> None:
    requests = [
        make_request(
            **({"language": "pl"} if lang == "pl" else ENGLISH)
            | {"ects": ects, "hours": hours, "eqf_level": None, "template": template}
        )
        for n, (lang, ects, hours, _line) in enumerate(WORKLOADS)
        for template in (("default", "formal") if n == 0 else ("default",))
    ]
    texts = [pdf_text(pdf, tmp_path) for pdf in renderer.render_batch(requests)]

    lines = [line for _lang, _ects, _hours, line in WORKLOADS]
    assert [line in text for line, text in zip([lines[0], *lines], texts, strict=True)] == [True] * len(texts)
    assert not any("1 hours" in text or "1 godzin " in text for text in texts)


def test_a_batch_gives_each_certificate_the_bytes_it_gets_alone(
    renderer: CertificateRenderer, polish_pdf: bytes, english_pdf: bytes, tmp_path: Path
) -> None:
    """Batches mix templates and languages; each PDF is the one its request gets when rendered alone, so
    a redelivered request lands on the same content-addressed object whatever batch it comes in."""
    formal = make_request(template="formal", learner_name="Jędrzej Gąsiorowski")
    other = make_request(learner_name="Urszula Kołodziej", verification_code="9XYZ-C4XA-P9RT")
    batch = [make_request(), formal, make_request(**ENGLISH), other]

    pdfs = renderer.render_batch(batch)

    assert pdfs == [polish_pdf, renderer.render(formal), english_pdf, renderer.render(other)]
    assert pdf_info(pdfs[3], tmp_path)["Title"].startswith("Zaświadczenie o ukończeniu: Urszula Kołodziej")
    assert "Zofia" not in pdf_text(pdfs[3], tmp_path)


def test_an_empty_batch_renders_nothing(renderer: CertificateRenderer) -> None:
    assert renderer.render_batch([]) == []
