"""Evidence from a PDF certificate: metadata, text, links, attachments and QR codes.

Uploads are hostile. Structure, metadata and attachments are read by `ebackpack.adapters.pdf_structure`
(pikepdf, whose stream decoding is capped); text and page images come from poppler (`pdftotext`,
`pdftoppm`), each in its own process under a time, memory and output limit (`prlimit`). Nothing is ever
inflated without a bound.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ebackpack.adapters import pdf_structure
from ebackpack.adapters.pdf_structure import MAX_PAGES as MAX_PAGES  # re-exported: the tests' bound
from ebackpack.adapters.pdf_structure import MiB, PdfMetadata, PdfRefused, PdfStructure
from services.importer.domain import ImportRejected

from .qr import decode_qr

TEXT_PAGES = 5
MAX_TEXT_CHARS = 20_000
QR_PAGES = 2
RASTER_SIDE = 1800  # pixels on a page's longer side: 154 dpi on A4, and no more on a poster-sized page
POPPLER_SECONDS = 6  # within the importer's per-file budget (EBACKPACK_IMPORT_FILE_SECONDS)
POPPLER_MEMORY = 1024 * MiB
POPPLER_OUTPUT = 64 * MiB  # any file poppler writes: the text, one page image, its error log


@dataclass(frozen=True)
class PdfEvidence:
    page_count: int
    metadata: PdfMetadata
    text: str  # the first TEXT_PAGES pages in reading order, at most MAX_TEXT_CHARS characters
    links: tuple[str, ...]  # URI link annotations, in page order, each once
    attachments: dict[str, bytes]  # embedded files by name (ours: credential.json)
    qr_texts: tuple[str, ...]  # QR codes on the first QR_PAGES pages


def extract_pdf(data: bytes) -> PdfEvidence:
    structure = read_structure(data)
    text, qr_texts = read_pages(data, structure.page_count)
    return PdfEvidence(
        structure.page_count, structure.metadata, text, structure.links, structure.attachments, qr_texts
    )


def read_structure(data: bytes) -> PdfStructure:
    try:
        return pdf_structure.read_structure(data)
    except PdfRefused as refused:
        raise ImportRejected(str(refused)) from refused


def read_pages(data: bytes, page_count: int) -> tuple[str, tuple[str, ...]]:
    """The text of the first pages and the QR codes on the first pages (poppler, limited processes)."""
    with tempfile.TemporaryDirectory(prefix="ebackpack-pdf-") as scratch:
        path = Path(scratch) / "upload.pdf"
        path.write_bytes(data)
        return _text(path, min(page_count, TEXT_PAGES)), _qr_texts(path, min(page_count, QR_PAGES))


def _text(path: Path, pages: int) -> str:
    if pages == 0:
        return ""
    out = path.with_suffix(".txt")
    _poppler(["pdftotext", "-f", "1", "-l", str(pages), "-enc", "UTF-8", str(path), str(out)])
    with out.open("rb") as text:  # UTF-8 has at most 4 bytes a character
        return text.read(4 * MAX_TEXT_CHARS).decode("utf-8", errors="replace")[:MAX_TEXT_CHARS]


def _qr_texts(path: Path, pages: int) -> tuple[str, ...]:
    """Pages rendered to grey PGM (no PNG compression to pay for) and scanned for QR codes."""
    if pages == 0:
        return ()
    prefix = path.with_name("page")
    _poppler(
        [
            "pdftoppm",
            "-f",
            "1",
            "-l",
            str(pages),
            "-scale-to",
            str(RASTER_SIDE),
            "-gray",
            str(path),
            str(prefix),
        ]
    )
    texts: dict[str, None] = {}
    for page in sorted(path.parent.glob("page-*.pgm")):  # numbered with equal widths: sorted in page order
        with Image.open(page, formats=["PPM"]) as image:
            texts.update(dict.fromkeys(decode_qr(image)))
    return tuple(texts)


def _poppler(args: list[str]) -> None:
    """Runs a poppler tool in its own process under `prlimit` (memory, CPU, file size), with a timeout.

    `prlimit` rather than `preexec_fn`: preexec_fn is not safe in a process that runs threads.
    """
    tool = args[0]
    log = Path(args[-1]).with_name(f"{tool}.log")
    limits = [f"--as={_poppler_memory()}", f"--cpu={POPPLER_SECONDS}", f"--fsize={POPPLER_OUTPUT}"]
    try:
        with log.open("wb") as stderr:
            done = subprocess.run(
                ["prlimit", *limits, "--", *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                timeout=POPPLER_SECONDS,
            )
    except subprocess.TimeoutExpired as error:
        raise ImportRejected(f"{tool} took longer than {POPPLER_SECONDS} s on this PDF") from error
    if done.returncode < 0:
        raise ImportRejected(_stopped_by(tool, -done.returncode))
    if done.returncode != 0:
        raise ImportRejected(f"{tool} could not read this PDF: {_last_line(log)}")


def _stopped_by(tool: str, sig: int) -> str:
    """Why the kernel stopped a poppler tool. The CPU and wall-clock limits are equal, so on a busy
    page either may fire first: both read as the same time limit."""
    if sig in (signal.SIGXCPU, signal.SIGKILL):  # the CPU limit: SIGKILL once the hard limit is reached
        return f"{tool} took longer than {POPPLER_SECONDS} s on this PDF"
    if sig == signal.SIGXFSZ:
        return f"{tool} was stopped on this PDF: it ran into its output limit of {POPPLER_OUTPUT:,} bytes"
    return f"{tool} was stopped on this PDF (signal {sig}): it ran into its memory limit"


def _poppler_memory() -> int:
    """POPPLER_MEMORY, or less when this process runs under a lower memory limit (the importer's
    sandbox): a child cannot be given more than its parent's hard limit."""
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    return POPPLER_MEMORY if hard == resource.RLIM_INFINITY else min(POPPLER_MEMORY, hard)


def _last_line(log: Path) -> str:
    with log.open("rb") as file:
        file.seek(max(0, log.stat().st_size - 500))
        lines = file.read().decode("utf-8", errors="replace").strip().splitlines()
    return lines[-1] if lines else "no reason given"
