"""A PDF's structure, read without rendering anything and without trusting it: metadata, link
annotations and embedded files, with pikepdf (qpdf), whose stream decoding is capped process-wide.

Shared by the importer (uploaded attestations) and the backpack's public PDF check: a decompression
bomb, an oversized image, too many pages or attachments, a password or a damaged cross-reference table
are refused with the reason (`PdfRefused`), never inflated without a bound.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

import pikepdf
from pikepdf import Name, StreamDecodeLevel
from pikepdf.models.metadata import decode_pdf_date
from pikepdf.settings import get_qpdf_limits, set_qpdf_limits

MiB = 1024 * 1024
MAX_PDF_BYTES = 25 * MiB
MAX_PAGES = 50
MAX_STREAM_BYTES = 64 * MiB  # any one stream, decoded
MAX_DECODED_BYTES = 256 * MiB  # all streams but images, decoded
MAX_IMAGE_PIXELS = 100_000_000  # any one image in the PDF
MAX_ATTACHMENTS = 20
MAX_ATTACHMENT_BYTES = 5 * MiB
MAX_ATTACHMENTS_BYTES = 10 * MiB
MAX_LINKS = 100
MAX_FIELD_CHARS = 1000  # metadata values and links

# Filters whose output qpdf caps (see _cap_qpdf_decoding) and that expand little or not at all. Streams
# with others (LZW, image codecs) are not decoded here: only the limited poppler processes do that.
_BOUNDED_FILTERS = frozenset({"/FlateDecode", "/ASCIIHexDecode", "/ASCII85Decode", "/RunLengthDecode"})


@dataclass(frozen=True)
class PdfMetadata:
    title: str | None
    author: str | None
    subject: str | None
    creator: str | None
    producer: str | None
    created: datetime | None


class PdfRefused(ValueError):
    """The PDF is not read: the message says why, in words a person can act on."""


def _cap_qpdf_decoding() -> None:
    """qpdf decodes a stream into memory in one piece; with these limits an oversized one fails instead.
    The limits are process-wide, so they are only ever lowered here, never raised."""
    limits = get_qpdf_limits()

    def lowered(name: str) -> int:
        return min(int(limits[name]) or MAX_STREAM_BYTES, MAX_STREAM_BYTES)

    set_qpdf_limits(
        flate_max_memory=lowered("flate_max_memory"),
        png_max_memory=lowered("png_max_memory"),
        run_length_max_memory=lowered("run_length_max_memory"),
        tiff_max_memory=lowered("tiff_max_memory"),
    )


_cap_qpdf_decoding()


@dataclass(frozen=True)
class PdfStructure:
    """What pikepdf reads without rendering anything: enough when an attached credential decides."""

    page_count: int
    metadata: PdfMetadata
    links: tuple[str, ...]
    attachments: dict[str, bytes]


def read_structure(data: bytes) -> PdfStructure:
    if len(data) > MAX_PDF_BYTES:
        raise PdfRefused(f"PDF too large: {len(data):,} bytes, limit {MAX_PDF_BYTES:,}")
    try:
        with _open(data) as pdf:
            page_count = len(pdf.pages)
            if page_count > MAX_PAGES:
                raise PdfRefused(f"PDF has {page_count} pages, limit {MAX_PAGES}")
            _check_streams(pdf)
            return PdfStructure(page_count, _metadata(pdf), _links(pdf), _attachments(pdf))
    except pikepdf.PikepdfError as error:
        raise PdfRefused(f"damaged PDF: {error}") from error


class _Upload(io.BytesIO):
    """Names the upload in qpdf's error messages (instead of `<_io.BytesIO object at 0x...>`)."""

    def __str__(self) -> str:
        return "upload.pdf"


def _open(data: bytes) -> pikepdf.Pdf:
    """Opens without qpdf's recovery: a PDF whose cross-reference table does not hold (truncated, spliced
    together, damaged in transit) is refused, not pieced together from whatever objects remain."""
    if b"%PDF-" not in data[:1024]:  # where readers look for the header
        raise PdfRefused("not a PDF file")
    try:
        return pikepdf.open(_Upload(data), attempt_recovery=False)
    except pikepdf.PasswordError as error:
        raise PdfRefused("password-protected PDF: it cannot be read without its password") from error


def _check_streams(pdf: pikepdf.Pdf) -> None:
    """Refuses a decompression bomb up front, with its reason, before poppler would run into its limits."""
    budget = MAX_DECODED_BYTES
    for obj in pdf.objects:
        if not isinstance(obj, pikepdf.Stream):
            continue
        if obj.get("/Subtype") == Name.Image:
            _check_image_size(obj)
        elif _filters(obj) <= _BOUNDED_FILTERS:
            budget -= len(_decoded(obj, "a stream"))
            if budget < 0:
                raise PdfRefused(f"the PDF's streams inflate to more than {MAX_DECODED_BYTES // MiB} MiB")


def _check_image_size(image: pikepdf.Stream) -> None:
    width, height = image.get("/Width"), image.get("/Height")
    if isinstance(width, int) and isinstance(height, int) and width * height > MAX_IMAGE_PIXELS:
        raise PdfRefused(
            f"image in the PDF too large: {width}x{height} pixels, limit {MAX_IMAGE_PIXELS:,} pixels"
        )


def _filters(stream: pikepdf.Stream) -> set[str]:
    filters = stream.get("/Filter")
    if filters is None:
        return set()
    if isinstance(filters, Name):
        return {str(filters)}
    if isinstance(filters, pikepdf.Array):
        return {str(f) if isinstance(f, Name) else "?" for f in filters}
    return {"?"}


def _decoded(stream: pikepdf.Stream, what: str) -> bytes:
    """Decoded bytes; damaged data decodes to nothing (poppler judges what it can still show)."""
    try:
        return stream.read_bytes(StreamDecodeLevel.generalized)
    except pikepdf.DataDecodingError as error:
        if "memory limit" in str(error):
            raise PdfRefused(
                f"{what} in the PDF (object {stream.objgen[0]}) inflates to more than "
                f"{MAX_STREAM_BYTES // MiB} MiB: refused as a decompression bomb"
            ) from error
        return b""


def _metadata(pdf: pikepdf.Pdf) -> PdfMetadata:
    info = pdf.trailer.get("/Info")
    if not isinstance(info, pikepdf.Dictionary):
        info = pikepdf.Dictionary()

    def field(key: str) -> str | None:
        value = info.get(key)
        return (str(value)[:MAX_FIELD_CHARS] or None) if isinstance(value, pikepdf.String) else None

    return PdfMetadata(
        title=field("/Title"),
        author=field("/Author"),
        subject=field("/Subject"),
        creator=field("/Creator"),
        producer=field("/Producer"),
        created=_pdf_date(field("/CreationDate")),
    )


def _pdf_date(value: str | None) -> datetime | None:
    try:
        return decode_pdf_date(value) if value else None
    except ValueError:
        return None


def _links(pdf: pikepdf.Pdf) -> tuple[str, ...]:
    links: dict[str, None] = {}
    for page in pdf.pages:
        annotations = page.obj.get("/Annots")
        if not isinstance(annotations, pikepdf.Array):
            continue
        for annotation in annotations:
            if uri := _link_uri(annotation):
                links[uri[:MAX_FIELD_CHARS]] = None
            if len(links) >= MAX_LINKS:
                return tuple(links)
    return tuple(links)


def _link_uri(annotation: pikepdf.Object) -> str | None:
    if not isinstance(annotation, pikepdf.Dictionary) or annotation.get("/Subtype") != Name.Link:
        return None
    action = annotation.get("/A")
    if not isinstance(action, pikepdf.Dictionary) or action.get("/S") != Name.URI:
        return None
    uri = action.get("/URI")
    return str(uri).strip() if isinstance(uri, pikepdf.String) else None


def _attachments(pdf: pikepdf.Pdf) -> dict[str, bytes]:
    """Embedded files (the document's EmbeddedFiles name tree), each and all together under a cap."""
    files: dict[str, bytes] = {}
    total = 0
    for name, spec in pdf.attachments.items():
        if len(files) == MAX_ATTACHMENTS:
            raise PdfRefused(f"PDF has more than {MAX_ATTACHMENTS} embedded files")
        files[name] = _attachment(name, spec)
        total += len(files[name])
        if total > MAX_ATTACHMENTS_BYTES:
            raise PdfRefused(f"embedded files over {MAX_ATTACHMENTS_BYTES // MiB} MiB together")
    return files


def _attachment(name: str, spec: pikepdf.AttachedFileSpec) -> bytes:
    stream = spec.get_file().obj
    if not isinstance(stream, pikepdf.Stream):
        raise PdfRefused(f"embedded file {name!r} has no content stream")
    too_large = f"embedded file {name!r} is larger than {MAX_ATTACHMENT_BYTES // MiB} MiB"
    declared = stream.get("/Params", pikepdf.Dictionary()).get("/Size")
    if isinstance(declared, int) and declared > MAX_ATTACHMENT_BYTES:
        raise PdfRefused(too_large)
    if not _filters(stream) <= _BOUNDED_FILTERS:
        raise PdfRefused(
            f"embedded file {name!r} uses a compression we do not open "
            f"({', '.join(sorted(_filters(stream)))})"
        )
    content = _decoded(stream, f"embedded file {name!r}")
    if len(content) > MAX_ATTACHMENT_BYTES:
        raise PdfRefused(too_large)
    return content
