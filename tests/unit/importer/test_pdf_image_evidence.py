"""PDF and image evidence: real files made here (WeasyPrint, qrcode, our own renderer), hostile ones too."""

from __future__ import annotations

import base64
import io
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from datetime import UTC, datetime

import pikepdf
import pytest
import qrcode
from PIL import Image, ImageDraw, ImageFilter
from weasyprint import HTML

from schemas.certificates import CertificateRenderRequest
from services.importer.domain import ImportRejected
from services.importer.formats import pdf as pdf_format
from services.importer.formats.image import extract_image
from services.importer.formats.pdf import MAX_PAGES, extract_pdf
from services.importer.verification_urls import UrlKind, recognize
from services.renderer.certificate import CertificateRenderer

NAVOICA = "https://navoica.pl/certificates/0123456789abcdef0123456789abcdef"
OWN_BASE = "https://backpack.example.pl"
CREDENTIAL = '{"type": ["VerifiableCredential", "OpenBadgeCredential"], "name": "Python Basics"}'

pytestmark = pytest.mark.skipif(
    not (shutil.which("pdftoppm") and shutil.which("prlimit")),
    reason="needs poppler-utils and prlimit (util-linux)",
)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def qr_image(text: str) -> Image.Image:
    return qrcode.make(text, box_size=8).get_image().convert("RGB")


def photo(qr_side: int | None = 500, size: tuple[int, int] = (4000, 3000)) -> Image.Image:
    """A slightly rotated, blurred, noisy 12 MP 'photo' of a page, with the QR code at `qr_side` px."""
    noise = Image.frombytes("L", size, os.urandom(size[0] * size[1])).filter(ImageFilter.GaussianBlur(2))
    picture = Image.merge("RGB", (noise, noise, noise)).point(lambda v: 110 + v // 2)
    ImageDraw.Draw(picture).text((300, 300), "Certificate of completion", fill="black")
    if qr_side:
        picture.paste(qr_image(NAVOICA).resize((qr_side, qr_side)), (size[0] - qr_side - 400, size[1] // 2))
    return picture.rotate(5, fillcolor=(90, 90, 90)).filter(ImageFilter.GaussianBlur(0.8))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(side: int = 30000) -> bytes:
    """A valid single-colour side x side PNG of a few hundred KB, compressed row by row (no big buffer)."""
    row, compressor = b"\0" * (1 + side // 8), zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def data_uri(image: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(image).decode()


def save(pdf: pikepdf.Pdf, **options: object) -> bytes:
    buffer = io.BytesIO()
    pdf.save(buffer, **options)  # type: ignore[arg-type]
    return buffer.getvalue()


@pytest.fixture(scope="module")
def navoica_pdf() -> bytes:
    html = f"""<html><head><title>Certyfikat Navoica</title><meta name="author" content="Navoica">
      <style>@page {{ size: A4 landscape }} img {{ width: 4cm }}</style></head>
      <body><h1>Certyfikat ukończenia</h1><p>Jan Kowalski ukończył kurs Programowanie w Pythonie.</p>
      <p><a href="{NAVOICA}">Zweryfikuj</a></p><img src="{data_uri(png(qr_image(NAVOICA)))}"></body></html>"""
    return HTML(string=html).write_pdf()


@pytest.fixture(scope="module")
def own_request() -> CertificateRenderRequest:
    return CertificateRenderRequest(
        credential_id="0b6a3f0e-6a4e-5c1d-9a57-3c1e4d2f8a11",
        verification_code="7KQM-C4XA-P9RT",
        verify_url=f"{OWN_BASE}/verify/7KQM-C4XA-P9RT",
        learner_name="Grzegorz Brzęczyszczykiewicz",
        course_name="Python Basics for Adult Learners",
        achievement_name="Python Basics",
        achievement_description="Writes, tests and documents small Python programs.",
        issued_on=datetime(2026, 3, 15, 10, 30, tzinfo=UTC),
        credential_json=CREDENTIAL,
        awarding_body="Stowarzyszenie Edukacji Dorosłych",
    )


# --- PDF -------------------------------------------------------------------------------------------


def test_weasyprint_pdf_with_a_navoica_qr_code(navoica_pdf: bytes) -> None:
    evidence = extract_pdf(navoica_pdf)
    assert evidence.page_count == 1
    assert evidence.qr_texts == (NAVOICA,)
    assert evidence.links == (NAVOICA,)
    assert "Jan Kowalski ukończył kurs Programowanie w Pythonie." in evidence.text
    assert evidence.metadata.title == "Certyfikat Navoica" and evidence.metadata.author == "Navoica"
    assert evidence.metadata.producer is not None and evidence.metadata.producer.startswith("WeasyPrint")
    assert evidence.attachments == {}
    recognized = recognize(evidence.qr_texts[0])
    assert recognized is not None and recognized.platform == "Navoica"


def test_our_own_certificate(own_request: CertificateRenderRequest) -> None:
    evidence = extract_pdf(CertificateRenderer().render(own_request))
    assert evidence.qr_texts == (own_request.verify_url,)
    assert evidence.attachments == {"credential.json": CREDENTIAL.encode()}
    assert own_request.learner_name in " ".join(evidence.text.split())
    assert evidence.metadata.created == own_request.issued_on
    recognized = recognize(evidence.qr_texts[0], OWN_BASE)
    assert recognized is not None and recognized.kind is UrlKind.OWN
    assert recognized.code == own_request.verification_code


def test_text_is_bounded() -> None:
    page = f"<p style='page-break-after: always; font-size: 6pt'>{'Zażółć gęślą jaźń. ' * 400}</p>"
    evidence = extract_pdf(HTML(string=page * 8).write_pdf())
    assert evidence.page_count == 8
    assert len(evidence.text) == 20_000


def test_truncated_pdf(navoica_pdf: bytes) -> None:
    with pytest.raises(ImportRejected, match="damaged PDF"):
        extract_pdf(navoica_pdf[: len(navoica_pdf) // 2])


def test_not_a_pdf() -> None:
    with pytest.raises(ImportRejected, match="not a PDF file"):
        extract_pdf(b"<html>certificate</html>")


def test_password_protected_pdf(navoica_pdf: bytes) -> None:
    with pikepdf.open(io.BytesIO(navoica_pdf)) as pdf:
        locked = save(pdf, encryption=pikepdf.Encryption(owner="owner", user="secret"))
    with pytest.raises(ImportRejected, match="password-protected PDF"):
        extract_pdf(locked)


def test_pdf_encrypted_only_against_changes_is_read(navoica_pdf: bytes) -> None:
    """No password needed to open it (only an owner password restricting copying): readable as usual."""
    restricted = pikepdf.Encryption(owner="owner", user="", allow=pikepdf.Permissions(extract=False))
    with pikepdf.open(io.BytesIO(navoica_pdf)) as pdf:
        evidence = extract_pdf(save(pdf, encryption=restricted))
    assert evidence.qr_texts == (NAVOICA,) and "Jan Kowalski" in evidence.text


def test_decompression_bomb_stream() -> None:
    """A content stream of 80 MiB of zeros, 80 KB compressed: refused before poppler sees it."""
    compressor = zlib.compressobj(9)
    chunk = b"\0" * (1024 * 1024)
    bomb = b"".join(compressor.compress(chunk) for _ in range(80)) + compressor.flush()
    pdf = pikepdf.new()
    pdf.add_blank_page()
    content = pikepdf.Stream(pdf, bomb)
    content.Filter = pikepdf.Name.FlateDecode
    pdf.pages[0].obj.Contents = content
    data = save(pdf, compress_streams=False, stream_decode_level=pikepdf.StreamDecodeLevel.none)
    assert len(data) < 200_000
    with pytest.raises(ImportRejected, match="inflates to more than 64 MiB: refused as a decompression bomb"):
        extract_pdf(data)


def test_image_in_the_pdf_declaring_a_huge_size() -> None:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    image = pikepdf.Stream(
        pdf,
        zlib.compress(b"\0" * 1000),
        Type=pikepdf.Name.XObject,
        Subtype=pikepdf.Name.Image,
        Width=30000,
        Height=30000,
        BitsPerComponent=8,
        ColorSpace=pikepdf.Name.DeviceGray,
        Filter=pikepdf.Name.FlateDecode,
    )
    pdf.pages[0].Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
    with pytest.raises(ImportRejected, match="image in the PDF too large: 30000x30000 pixels"):
        extract_pdf(save(pdf))


@pytest.mark.parametrize(("size", "declared"), [(6 * 1024 * 1024, None), (100, 10**9)])
def test_oversized_attachment(navoica_pdf: bytes, size: int, declared: int | None) -> None:
    with pikepdf.open(io.BytesIO(navoica_pdf)) as pdf:
        spec = pikepdf.AttachedFileSpec(pdf, b"\0" * size, filename="video.mp4")
        pdf.attachments["video.mp4"] = spec
        if declared is not None:
            spec.get_file().obj.Params.Size = declared
        data = save(pdf)
    with pytest.raises(ImportRejected, match="embedded file 'video.mp4' is larger than 5 MiB"):
        extract_pdf(data)


def test_poppler_runs_under_its_limits(navoica_pdf: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_format, "POPPLER_OUTPUT", 1000)  # bytes: the page image is larger
    with pytest.raises(ImportRejected, match="pdftoppm .* ran into its output limit of 1,000 bytes"):
        extract_pdf(navoica_pdf)


def test_too_many_pages() -> None:
    pdf = pikepdf.new()
    for _ in range(MAX_PAGES + 1):
        pdf.add_blank_page()
    with pytest.raises(ImportRejected, match=f"PDF has {MAX_PAGES + 1} pages, limit {MAX_PAGES}"):
        extract_pdf(save(pdf))


# --- images ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("encode", "kind"), [(png, "png"), (jpeg, "jpeg")])
def test_photo_with_a_qr_code(encode: Callable[[Image.Image], bytes], kind: str) -> None:
    evidence = extract_image(encode(photo()))
    assert (evidence.kind, evidence.width, evidence.height) == (kind, 4000, 3000)
    assert evidence.qr_texts == (NAVOICA,)


def test_small_qr_code_in_a_large_photo_is_found_at_full_size() -> None:
    assert extract_image(jpeg(photo(qr_side=140))).qr_texts == (NAVOICA,)


def test_qr_code_on_a_transparent_background() -> None:
    code = qrcode.make(NAVOICA, box_size=6).get_image().convert("L")
    transparent = Image.new("RGBA", code.size, (0, 0, 0, 0))
    transparent.putalpha(code.point(lambda v: 255 - v))  # black modules opaque, the rest transparent
    assert extract_image(png(transparent)).qr_texts == (NAVOICA,)


def test_several_qr_codes_in_reading_order() -> None:
    page = Image.new("RGB", (1200, 1000), "white")
    page.paste(qr_image("second").resize((300, 300)), (100, 600))
    page.paste(qr_image("first").resize((300, 300)), (700, 100))
    page.paste(qr_image("first").resize((300, 300)), (100, 100))
    assert extract_image(png(page)).qr_texts == ("first", "second")


def test_image_without_a_qr_code() -> None:
    evidence = extract_image(jpeg(photo(qr_side=None, size=(1600, 1200))))
    assert evidence.qr_texts == () and (evidence.width, evidence.height) == (1600, 1200)


def test_decompression_bomb_png_is_refused_from_its_header() -> None:
    bomb = png_bomb()
    assert len(bomb) < 1_000_000
    with pytest.raises(ImportRejected, match=r"image too large: 30000x30000 pixels, limit 40,000,000 pixels"):
        extract_image(bomb)


@pytest.mark.parametrize("encode", [png, jpeg])
def test_truncated_image(encode: Callable[[Image.Image], bytes]) -> None:
    data = encode(photo(size=(1200, 900)))
    with pytest.raises(ImportRejected, match="damaged (PNG|JPEG) image: .*truncated"):
        extract_image(data[: len(data) // 2])


@pytest.mark.parametrize("data", [b"GIF89a\x01\x00\x01\x00", b"%PDF-1.7", b""])
def test_not_a_png_or_jpeg(data: bytes) -> None:
    with pytest.raises(ImportRejected, match="not a PNG or JPEG image"):
        extract_image(data)


def test_corrupt_png_header() -> None:
    data = bytearray(png(qr_image(NAVOICA)))
    data[20] ^= 0xFF  # inside IHDR: its checksum no longer matches
    with pytest.raises(ImportRejected, match="damaged PNG image"):
        extract_image(bytes(data))
