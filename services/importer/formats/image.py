"""Evidence from a photo or scan of a certificate (PNG or JPEG): its size and the QR codes in it.

Uploads are hostile: the pixel count is checked from the header before any pixel is decoded, so a
small file declaring a huge image (a decompression bomb) costs nothing.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageFile, JpegImagePlugin, PngImagePlugin

from services.importer.domain import ImportRejected

from .qr import decode_qr

MAX_IMAGE_BYTES = 25 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 40-megapixel photo; PIL's own bomb warning starts at 89 MP
# QR codes are first looked for at most this large (a 12 MP photo: 2x faster); small codes that blur away
# at that size are then looked for at full size.
QR_SIDE = 2048

ImageKind = Literal["png", "jpeg"]
_SIGNATURES: dict[bytes, tuple[ImageKind, type[ImageFile.ImageFile]]] = {
    b"\x89PNG\r\n\x1a\n": ("png", PngImagePlugin.PngImageFile),
    b"\xff\xd8\xff": ("jpeg", JpegImagePlugin.JpegImageFile),
}


@dataclass(frozen=True)
class ImageEvidence:
    kind: ImageKind
    width: int
    height: int
    qr_texts: tuple[str, ...]


def extract_image(data: bytes) -> ImageEvidence:
    if len(data) > MAX_IMAGE_BYTES:
        raise ImportRejected(f"image file too large: {len(data):,} bytes, limit {MAX_IMAGE_BYTES:,}")
    kind, image = _open(data)
    with image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImportRejected(f"image too large: {width}x{height} pixels, limit {MAX_PIXELS:,} pixels")
        _check_complete(data, kind)
        texts = decode_qr(_decoded_for_qr(image, kind, QR_SIDE))
    if not texts and max(width, height) > QR_SIDE:
        with _open(data)[1] as image:
            texts = decode_qr(_decoded_for_qr(image, kind, None))
    return ImageEvidence(kind, width, height, tuple(texts))


def _open(data: bytes) -> tuple[ImageKind, ImageFile.ImageFile]:
    """Reads the header only. The decoder is chosen by signature, not by PIL's guess among all its
    formats; and it is called directly, because `Image.open` raises its own bomb error, without the
    dimensions, before our limit (stricter than PIL's) can say them."""
    for signature, (kind, decoder) in _SIGNATURES.items():
        if data.startswith(signature):
            try:
                return kind, decoder(io.BytesIO(data))
            except (OSError, SyntaxError, ValueError) as error:
                raise ImportRejected(f"damaged {kind.upper()} image: {error}") from error
    raise ImportRejected("not a PNG or JPEG image")


def _check_complete(data: bytes, kind: ImageKind) -> None:
    """PIL would say when the data ends early, unless ImageFile.LOAD_TRUNCATED_IMAGES is set: then it pads
    silently. WeasyPrint sets it for the whole process, so the structure is checked here instead."""
    problem = _png_problem(data) if kind == "png" else _jpeg_problem(data)
    if problem:
        raise ImportRejected(f"damaged {kind.upper()} image: {problem}")


def _png_problem(data: bytes) -> str | None:
    """Chunks (length, type, data, CRC) up to IEND, each with a matching checksum."""
    position = 8
    while position + 12 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        end = position + 8 + length
        if end + 4 > len(data):
            break
        if zlib.crc32(data[position + 4 : end]) != int.from_bytes(data[end : end + 4], "big"):
            return f"checksum error in chunk {data[position + 4 : position + 8]!r}"
        if data[position + 4 : position + 8] == b"IEND":
            return None
        position = end + 4
    return "truncated (the file ends before its IEND chunk)"


def _jpeg_problem(data: bytes) -> str | None:
    """Marker segments up to the first scan, then an end-of-image marker after it (entropy-coded data
    cannot contain one). Segments are skipped by length, so an EXIF thumbnail's markers do not count."""
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xDA:  # start of scan
            found = data.find(b"\xff\xd9", position) != -1
            return None if found else "truncated (the file ends before its end-of-image marker)"
        position += 1 if marker == 0xFF else 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return "truncated or corrupt before its image data"


def _decoded_for_qr(image: ImageFile.ImageFile, kind: ImageKind, side: int | None) -> Image.Image:
    """The pixels, grey, reduced to at most `side` on the longer side and flattened onto white (a QR code
    on a transparent background is otherwise black on black)."""
    if side is not None:
        image.draft("L", (side, side))  # JPEG: decodes at 1/2, 1/4 or 1/8 scale, far faster
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImportRejected(f"damaged {kind.upper()} image: {error}") from error
    picture: Image.Image = image
    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
        rgba = picture.convert("RGBA")
        picture = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    picture = picture.convert("L")
    if side is not None:
        picture.thumbnail((side, side))
    return picture
