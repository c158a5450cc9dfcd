"""Badge images: baking Open Badges data into PNG/SVG files, and a default medal picture.

Baking follows the Open Badges 2.0 Baking Specification and section "Baking" of Open Badges 3.0:
- PNG: one uncompressed `iTXt` chunk, keyword `openbadges` (2.0: assertion JSON or JWS) or
  `openbadgecredential` (3.0: credential JSON or compact JWT). The other chunks are copied byte for
  byte, so the pixels, size and colour profile of the picture never change.
- SVG: `<openbadges:assertion verify="URL|JWS">` (2.0, namespace http://openbadges.org) or
  `<openbadges:credential>` (3.0, namespace https://purl.imsglobal.org/ob/v3p0) as the first child
  of the root `<svg>`, with JSON in CDATA or a signature in `verify`.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from xml.dom import minidom
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape, quoteattr

from PIL import Image, ImageDraw, ImageFont

OB2_PNG_KEYWORD = "openbadges"
OB3_PNG_KEYWORD = "openbadgecredential"
OB2_SVG_NAMESPACE = "http://openbadges.org"
OB3_SVG_NAMESPACE = "https://purl.imsglobal.org/ob/v3p0"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = (b"iTXt", b"tEXt", b"zTXt")
_OB_ELEMENTS = {(OB2_SVG_NAMESPACE, "assertion"), (OB3_SVG_NAMESPACE, "credential")}


# --------------------------------------------------------------------------------------------- PNG


@dataclass(frozen=True)
class _Chunk:
    kind: bytes
    data: bytes
    raw: bytes  # the whole chunk as found (length, type, data, CRC): copied verbatim when kept


def _chunks(png: bytes) -> Iterator[_Chunk]:
    """Walk the chunk list; malformed files fail loudly rather than being half-baked."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG image: the 8-byte PNG signature is missing")
    offset = len(PNG_SIGNATURE)
    while offset < len(png):
        if offset + 12 > len(png):
            raise ValueError(f"truncated PNG: incomplete chunk header at byte {offset}")
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        end = offset + 12 + length
        if end > len(png):
            raise ValueError(f"truncated PNG: chunk at byte {offset} runs past the end of the file")
        kind = png[offset + 4 : offset + 8]
        yield _Chunk(kind, png[offset + 8 : offset + 8 + length], png[offset:end])
        offset = end
        if kind == b"IEND":
            return
    raise ValueError("truncated PNG: no IEND chunk")


def _make_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _check_keyword(keyword: str) -> bytes:
    """PNG keywords are 1-79 Latin-1 characters without NUL (PNG spec 11.3.4)."""
    try:
        encoded = keyword.encode("latin-1") if keyword.isprintable() else b""
    except UnicodeEncodeError:
        encoded = b""
    if not 1 <= len(encoded) <= 79:
        raise ValueError(f"invalid PNG text keyword {keyword!r}: 1-79 printable Latin-1 characters")
    return encoded


def _itxt_data(keyword: bytes, text: str) -> bytes:
    # keyword NUL, compression flag 0, method 0, empty language tag NUL, empty translated keyword NUL
    return keyword + b"\x00\x00\x00" + b"\x00" + b"\x00" + text.encode("utf-8")


def _text_keyword(chunk: _Chunk) -> bytes | None:
    if chunk.kind not in _TEXT_CHUNKS:
        return None
    return chunk.data.split(b"\x00", 1)[0]


def bake_png(png: bytes, keyword: str, text: str) -> bytes:
    """Return `png` with one uncompressed iTXt chunk `keyword` = `text`, inserted before IEND.

    Any earlier text chunk with the same keyword is dropped (the specs allow only one); all other
    chunks are copied verbatim, so the image itself is untouched.
    """
    key = _check_keyword(keyword)
    kept: list[bytes] = [PNG_SIGNATURE]
    for chunk in _chunks(png):
        if chunk.kind == b"IEND":
            kept.append(_make_chunk(b"iTXt", _itxt_data(key, text)))
        if _text_keyword(chunk) != key:
            kept.append(chunk.raw)
    return b"".join(kept)


def _inflate(data: bytes, limit: int) -> bytes:
    """zlib data, refusing to inflate past `limit` bytes (a compressed text chunk can be a bomb)."""
    inflater = zlib.decompressobj()
    text = inflater.decompress(data, limit + 1)
    if len(text) > limit:
        raise ValueError(f"compressed text chunk inflates beyond {limit} bytes")
    return text


def _decode_itxt(data: bytes, limit: int) -> str:
    _keyword, rest = data.split(b"\x00", 1)
    compressed, method, rest = rest[0], rest[1], rest[2:]
    _language, _translated, text = rest.split(b"\x00", 2)
    if compressed:
        if method != 0:
            raise ValueError(f"unknown iTXt compression method {method}")
        text = _inflate(text, limit)
    return text.decode("utf-8")


def _decode_latin1_text(chunk: _Chunk, limit: int) -> str:
    value = chunk.data.split(b"\x00", 1)[1]
    if chunk.kind == b"zTXt":
        value = _inflate(value[1:], limit)
    return value.decode("latin-1")


def unbake_png(png: bytes, keyword: str, max_text: int = 16 * 1024 * 1024) -> str | None:
    """The text stored under `keyword`: the first iTXt wins, else a legacy tEXt/zTXt; None if absent.

    Compressed text inflating beyond `max_text` bytes raises ValueError."""
    key = _check_keyword(keyword)
    legacy: str | None = None
    for chunk in _chunks(png):
        if _text_keyword(chunk) != key:
            continue
        if chunk.kind == b"iTXt":
            return _decode_itxt(chunk.data, max_text)
        if legacy is None:
            legacy = _decode_latin1_text(chunk, max_text)
    return legacy


# --------------------------------------------------------------------------------------------- SVG


def _parse_svg(svg: str) -> tuple[minidom.Document, minidom.Element]:
    """Namespace-aware DOM (minidom keeps CDATA sections, prefixes and the DOCTYPE on output)."""
    try:
        document = minidom.parseString(svg)
    except ExpatError as exc:
        raise ValueError(f"not well-formed SVG/XML: {exc}") from exc
    root = document.documentElement
    if root is None or root.localName != "svg":
        raise ValueError("not an SVG document: the root element is not <svg>")
    return document, root


def _is_ob_element(node: minidom.Node) -> bool:
    if not isinstance(node, minidom.Element):
        return False
    return (node.namespaceURI, node.localName) in _OB_ELEMENTS or node.tagName in (
        "openbadges:assertion",
        "openbadges:credential",
    )


def _json_object(payload: str) -> dict[str, object] | None:
    text = payload.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _ob2_verify_url(assertion: dict[str, object], verify_url: str | None) -> str:
    """OB 2.0 `verify` = the hosted assertion URL: given, else its `id`, else 1.x `verify.url`."""
    legacy = assertion.get("verify")
    candidates = [verify_url, assertion.get("id"), legacy.get("url") if isinstance(legacy, dict) else None]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.startswith(("http://", "https://")):
            return candidate
    raise ValueError("OB 2.0 SVG baking of an assertion JSON needs its hosted URL (verify_url or an http id)")


def _ob_element(
    document: minidom.Document, *, ob3: bool, payload: str, verify_url: str | None
) -> minidom.Element:
    namespace, name = (OB3_SVG_NAMESPACE, "credential") if ob3 else (OB2_SVG_NAMESPACE, "assertion")
    element = document.createElementNS(namespace, f"openbadges:{name}")
    data = _json_object(payload)
    if data is None:  # a signature (JWS/JWT) or, for legacy 2.0, the hosted URL: no body
        element.setAttribute("verify", payload.strip())
        return element
    if ob3 and verify_url is not None:
        raise ValueError("verify_url is for OB 2.0 only: an OB 3.0 credential JSON has no verify attribute")
    if not ob3:
        element.setAttribute("verify", _ob2_verify_url(data, verify_url))
    # "]]>" can only occur inside a JSON string, where ">" may be written as \u003e: same JSON value.
    element.appendChild(document.createCDATASection(payload.replace("]]>", "]]\\u003e")))
    return element


def bake_svg(svg: str, *, ob3: bool, payload: str, verify_url: str | None = None) -> str:
    """Return `svg` with the badge data as the first child of the root element.

    `payload` is JSON (baked in CDATA) or a compact JWS/JWT (baked as `verify`). For OB 2.0 JSON the
    `verify` attribute is `verify_url`, else the assertion's http(s) `id`. Earlier baked data is
    replaced: an image carries one badge. Bake hosted OB 2.0 badges as JSON: a URL-only element is
    legacy, and the reference validator (openbadges 1.1.2) cannot read it.
    """
    document, root = _parse_svg(svg)
    for old in [node for node in root.getElementsByTagName("*") if _is_ob_element(node)]:
        if old.parentNode is not None:
            old.parentNode.removeChild(old).unlink()
    root.setAttribute("xmlns:openbadges", OB3_SVG_NAMESPACE if ob3 else OB2_SVG_NAMESPACE)
    root.insertBefore(_ob_element(document, ob3=ob3, payload=payload, verify_url=verify_url), root.firstChild)
    return str(document.toxml())


def _element_text(element: minidom.Element) -> str:
    parts = [node.data for node in element.childNodes if isinstance(node, minidom.Text)]
    return "".join(parts).strip()


def unbake_svg(svg: str) -> str | None:
    """The baked JSON (CDATA/body) if any, else the `verify` value (signature or hosted URL), else None."""
    _document, root = _parse_svg(svg)
    for element in root.getElementsByTagName("*"):
        if _is_ob_element(element):
            return _element_text(element) or element.getAttribute("verify").strip() or None
    return None


# ---------------------------------------------------------------------------------- default images

FONT_PATHS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans-Bold.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf"),
)
SVG_FONT_FAMILY = "'DejaVu Sans', Verdana, 'Segoe UI', Arial, sans-serif"
_VIEW = 400  # both images are laid out in a 400 x 400 box; the PNG scales it
_SUPERSAMPLE = 3  # draw larger, then downscale: cheap anti-aliasing for shapes
_TITLE_BOX = (212.0, 3, 30, 13)  # max width, max lines, start and minimum font size
_SUBTITLE_BOX = (250.0, 1, 16, 9)

_PALETTES = (  # (ring, ribbon/banner, disc, text): picked from the title, so it is deterministic
    ("#1E5AA8", "#123A6E", "#F3F7FD", "#0F2A4F"),
    ("#2E7D4F", "#1B4D30", "#F2FAF4", "#133822"),
    ("#9E2A3A", "#641A25", "#FDF3F4", "#4A121B"),
    ("#B7791F", "#7A4F12", "#FFF9EE", "#4F330B"),
    ("#5B3E99", "#3A2766", "#F6F3FD", "#2A1C4A"),
    ("#0F7C80", "#0A5255", "#F0FAFA", "#073A3C"),
)

FontType = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class _TextBlock:
    lines: tuple[str, ...]
    size: int  # font size in the 400-unit layout box
    baselines: tuple[float, ...]


@dataclass(frozen=True)
class _Layout:
    palette: tuple[str, str, str, str]
    title: _TextBlock
    subtitle: _TextBlock


@cache
def _font(size: int) -> FontType:
    """DejaVu Sans Bold (covers Polish diacritics); Pillow's built-in font if it is missing."""
    for path in FONT_PATHS:
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)


def _width(text: str, size: int) -> float:
    return float(_font(size).getlength(text))


def _wrap(words: list[str], size: int, max_width: float) -> list[str] | None:
    """Greedy word wrap; None when a single word is wider than the box at this size."""
    lines: list[str] = []
    for word in words:
        if _width(word, size) > max_width:
            return None
        if lines and _width(f"{lines[-1]} {word}", size) <= max_width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _ellipsize(text: str, size: int, max_width: float) -> str:
    while text and _width(text + "…", size) > max_width:
        text = text[:-1].rstrip()
    return text + "…"


def _fit(text: str, box: tuple[float, int, int, int]) -> tuple[list[str], int]:
    """Largest font size at which `text` wraps into the box; else the minimum size, cut with an ellipsis."""
    max_width, max_lines, start, minimum = box
    words = text.split() or [""]
    for size in range(start, minimum - 1, -1):
        lines = _wrap(words, size, max_width)
        if lines is not None and len(lines) <= max_lines:
            return lines, size
    lines = _wrap_hard(words, minimum, max_width)
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [_ellipsize(" ".join(lines[max_lines - 1 :]), minimum, max_width)]
    return lines, minimum


def _wrap_hard(words: list[str], size: int, max_width: float) -> list[str]:
    """Word wrap that splits over-long words by characters (last resort at the minimum size)."""
    pieces: list[str] = []
    for word in words:
        while _width(word, size) > max_width and len(word) > 1:
            cut = 1
            while cut < len(word) and _width(word[: cut + 1], size) <= max_width:
                cut += 1
            pieces.append(word[:cut])
            word = word[cut:]
        pieces.append(word)
    return _wrap(pieces, size, max_width) or pieces


def _block(lines: list[str], size: int, center_y: float) -> _TextBlock:
    """Baselines for lines centred vertically on `center_y` (line height 1.18 em, cap height ~0.72 em)."""
    step = size * 1.18
    first = center_y - step * (len(lines) - 1) / 2 + size * 0.36
    return _TextBlock(tuple(lines), size, tuple(first + i * step for i in range(len(lines))))


def _layout(title: str, subtitle: str) -> _Layout:
    digest = hashlib.sha256(title.strip().encode("utf-8")).digest()
    title_lines, title_size = _fit(" ".join(title.split()), _TITLE_BOX)
    subtitle_lines, subtitle_size = _fit(" ".join(subtitle.split()), _SUBTITLE_BOX)
    return _Layout(
        _PALETTES[digest[0] % len(_PALETTES)],
        _block(title_lines, title_size, 178.0),
        _block(subtitle_lines, subtitle_size, 281.0),
    )


def _star(cx: float, cy: float, outer: float, inner: float) -> list[tuple[float, float]]:
    points = []
    for i in range(10):
        radius = outer if i % 2 == 0 else inner
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


# Shapes in the 400-unit box, shared by the PNG and the SVG so both look the same.
_RIBBON_LEFT = [(150.0, 250.0), (196.0, 262.0), (166.0, 392.0), (141.0, 366.0), (108.0, 380.0)]
_RIBBON_RIGHT = [(400.0 - x, y) for x, y in _RIBBON_LEFT]
_BANNER = [(44.0, 262.0), (356.0, 262.0), (342.0, 281.0), (356.0, 300.0), (44.0, 300.0), (58.0, 281.0)]
_MEDAL = (200.0, 172.0, 150.0)  # centre x, centre y, radius
_STAR = _star(200.0, 76.0, 17.0, 7.0)


def _scaled(points: list[tuple[float, float]], scale: float) -> list[tuple[float, float]]:
    return [(x * scale, y * scale) for x, y in points]


def _circle(
    draw: ImageDraw.ImageDraw,
    radius: float,
    scale: float,
    *,
    fill: str | None = None,
    outline: str | None = None,
    width: int = 1,
) -> None:
    cx, cy, _ = _MEDAL
    box = ((cx - radius) * scale, (cy - radius) * scale, (cx + radius) * scale, (cy + radius) * scale)
    draw.ellipse(box, fill=fill, outline=outline, width=width)


def _draw_shapes(draw: ImageDraw.ImageDraw, layout: _Layout, scale: float) -> None:
    ring, dark, disc, _text = layout.palette
    for tail in (_RIBBON_LEFT, _RIBBON_RIGHT):
        draw.polygon(_scaled(tail, scale), fill=dark)
    _circle(draw, _MEDAL[2], scale, fill=ring)
    _circle(draw, 137.0, scale, outline="#FFFFFF", width=max(1, round(3 * scale)))
    _circle(draw, 128.0, scale, fill=disc)
    draw.polygon(_scaled(_STAR, scale), fill=ring)
    draw.polygon(_scaled(_BANNER, scale), fill=dark)


def _draw_text(draw: ImageDraw.ImageDraw, block: _TextBlock, scale: float, fill: str) -> None:
    font = _font(max(1, round(block.size * scale)))
    for line, baseline in zip(block.lines, block.baselines, strict=True):
        if isinstance(font, ImageFont.FreeTypeFont):
            draw.text((200.0 * scale, baseline * scale), line, font=font, fill=fill, anchor="ms")
        else:  # bitmap fallback font: no anchors, centre by measured width
            left = 200.0 * scale - draw.textlength(line, font=font) / 2
            draw.text((left, (baseline - block.size) * scale), line, font=font, fill=fill)


def badge_png(title: str, subtitle: str, *, size: int = 400) -> bytes:
    """A round medal on a ribbon with the title wrapped on the disc and the subtitle on a banner.

    Same input, same bytes (no timestamps); transparent background.
    """
    if size < 32:
        raise ValueError("badge size must be at least 32 pixels")
    layout = _layout(title, subtitle)
    big = size * _SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    _draw_shapes(draw, layout, big / _VIEW)
    image = image.resize((size, size), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(image)  # text is drawn at the final size: FreeType hints it crisply
    _draw_text(draw, layout.title, size / _VIEW, layout.palette[3])
    _draw_text(draw, layout.subtitle, size / _VIEW, "#FFFFFF")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def _svg_points(points: list[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def _svg_text(block: _TextBlock, fill: str) -> list[str]:
    """One <text> per line; textLength pins the DejaVu width so other fonts cannot overflow the disc."""
    return [
        f'<text x="200" y="{baseline:.1f}" font-size="{block.size}" fill="{fill}" textLength='
        f'"{_width(line, block.size):.1f}" lengthAdjust="spacingAndGlyphs">{escape(line)}</text>'
        for line, baseline in zip(block.lines, block.baselines, strict=True)
    ]


def badge_svg(title: str, subtitle: str) -> str:
    """The same medal as `badge_png`, as accessible SVG (role="img", <title>, <desc>)."""
    layout = _layout(title, subtitle)
    ring, dark, disc, text = layout.palette
    cx, cy, radius = _MEDAL
    label = f"{' '.join(title.split())} — {' '.join(subtitle.split())}"
    parts = [
        f'<svg xmlns="{SVG_NAMESPACE}" width="{_VIEW}" height="{_VIEW}" viewBox="0 0 {_VIEW} {_VIEW}" '
        'role="img" aria-labelledby="badge-title badge-desc">',
        f'<title id="badge-title">{escape(label)}</title>',
        f'<desc id="badge-desc">{escape("Badge: " + " ".join(title.split()))}</desc>',
        f'<polygon points="{_svg_points(_RIBBON_LEFT)}" fill="{dark}"/>',
        f'<polygon points="{_svg_points(_RIBBON_RIGHT)}" fill="{dark}"/>',
        f'<circle cx="{cx:g}" cy="{cy:g}" r="{radius:g}" fill="{ring}"/>',
        f'<circle cx="{cx:g}" cy="{cy:g}" r="137" fill="none" stroke="#FFFFFF" stroke-width="3"/>',
        f'<circle cx="{cx:g}" cy="{cy:g}" r="128" fill="{disc}"/>',
        f'<polygon points="{_svg_points(_STAR)}" fill="{ring}"/>',
        f'<polygon points="{_svg_points(_BANNER)}" fill="{dark}"/>',
        f'<g font-family={quoteattr(SVG_FONT_FAMILY)} font-weight="bold" text-anchor="middle">',
        *_svg_text(layout.title, text),
        *_svg_text(layout.subtitle, "#FFFFFF"),
        "</g>",
        "</svg>",
    ]
    return "\n".join(parts) + "\n"
