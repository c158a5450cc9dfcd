"""Certificates that differ only in the learner's one-line fields, written without laying the page out again.

In a flood of completions nearly every certificate shares its rule's text with many others: only the
learner's name, the date, the code, the credential id and the address (text and QR code) differ. For each
*shape* (template, language, name size class, the rule's texts, QR code size; the name's number of words
for a template printing it word by word) WeasyPrint lays the page out a few times with placeholders in
those fields, and the skeleton keeps what it wrote:

- the page's content stream, cut where each field's text and the QR code's modules are drawn; every other
  number that moved with a field's width (a centred name's position, the rule under it) is fitted as a
  linear function of the widths, and a check render with other widths must match the fit;
- every other object of the PDF (structure tree, fonts of the rule's text, output intent, ...) serialized
  once.

A learner's certificate then costs shaping five short strings with the Pango calls WeasyPrint makes
(`split_first_line`, then its own `draw_first_line`), subsetting the faces those strings use, the QR code,
the metadata and one deflate. What the fit was not checked for falls back to the full render: a field that
would wrap or be wider than the widest placeholder checked, a character outside the renderer's font
repertoire, a face the skeleton does not know, a template whose fields are not drawn as plain text boxes.

WeasyPrint has no public hooks for this: `install()` wraps `split_first_line` (as the inline layout calls
it) and `draw_first_line`; the wrappers act only while a skeleton is being recorded, in this thread.

Like the full render, the result is a function of the request alone: the skeleton depends only on the
shape, so the same request gives the same bytes in any batch, order or process.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import string
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pydyf
from weasyprint import __version__ as weasyprint_version
from weasyprint.document import Document, DocumentMetadata
from weasyprint.draw import text as weasyprint_draw_text
from weasyprint.layout import inline as weasyprint_inline
from weasyprint.matrix import Matrix
from weasyprint.pdf import _w3c_date_to_pdf as w3c_date_to_pdf
from weasyprint.pdf.fonts import build_fonts_dictionary
from weasyprint.pdf.stream import Stream
from weasyprint.text.line_break import split_first_line

from schemas.certificates import CertificateRenderRequest

from .fonts import REPERTOIRE
from .pages import (
    DEFLATE_LEVEL,
    XMP_PDF_UA,
    certificate_metadata,
    declare_pdf_ua,
    format_date,
    name_size,
    template_context,
)
from .qr import QRCodeImage

MAX_NAME_WORDS = 6  # a template may print each word of the name as a text box of its own
WHOLE_NAME_WORDS = 2  # the name's words in a shape's first skeleton
MAX_SKELETONS = 256  # per renderer process; each holds its page's objects
# Placeholders are MARK (two word joiners: invisible, zero width, nothing a template prints), the part's
# letter, a filler and a closing word joiner (so no placeholder is part of another).
MARK = "\u2060\u2060"
_END = "\u2060"
# A part is a field, or one word of the name ("name0", "name1", ...): each has its own placeholder.
_LETTERS = {"date": "D", "code": "C", "credential": "I", "url": "U"} | {
    f"name{index}": letter for index, letter in enumerate("NOPRST")
}
_PLACEHOLDER = re.compile(MARK + "([A-Z])[mi\u200b]*" + _END)
_FIELD_OF_LETTER = {letter: name for name, letter in _LETTERS.items()}
NARROW = 2  # fillers of the base render
MAX_FILLER = 1000
PROBE_SHARES = [0.75**step for step in range(10)]  # of the page's width
BISECTIONS = 6  # probes between the widest share that fits and the next
QR_SLOT_SRC = "ebackpack-skeleton:qr"
_NUMBER = re.compile(rb"-?(?:\d+\.?\d*|\.\d+)")
_TOKEN = re.compile(rb"\S+")
FIT_TOLERANCE = 0.01  # how far a fitted number may miss the check render (page units)
XMP_HEADER = b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>\n<x:xmpmeta xmlns:x="adobe:ns:meta/">'
XMP_FOOTER = b'</x:xmpmeta>\n<?xpacket end="r"?>'
METADATA = {"Type": "/Metadata", "Subtype": "/XML"}


class NotThisShape(Exception):
    """The skeleton cannot write this request (or this shape at all): render it in full."""


def placeholder(name: str, count: int, tag: int = 0) -> str:
    """The part's placeholder with `count` filler letters, which a line may break between (a zero-width
    space after every third), so that a placeholder too wide for its line wraps rather than overflows;
    wide letters, so that it has few characters (a template may treat long words differently). `tag`
    zero-width spaces at the end tell the pages of one probe apart without changing the width."""
    wide = "".join("m\u200b" if index % 3 == 2 else "m" for index in range(count // 3))
    body = wide + "i" * (count % 3)  # "m" is more than twice as wide as "i": wider for every count
    return MARK + _LETTERS[name] + body + "\u200b" * tag + _END


def fits(record: Recording, part: str, count: int, line_start: bool, tag: int) -> bool:
    """Whether the part's placeholder with this filler was laid out on one line within its width, where it
    was in the base render (not pushed to a line of its own)."""
    text = placeholder(part, count, tag)
    return any(
        line.fits and line.is_line_start == line_start and text in line_text
        for line_text, line in record.lines.items()
    )


def month_names(language: str) -> str:
    """Every date's words in the language, for the date's seeds."""
    return " ".join(format_date(datetime(2000, month, 1, tzinfo=UTC), language) for month in range(1, 13))


def level_values(counts: dict[str, int], tag: int = 0) -> dict[str, str]:
    return {name: placeholder(name, count, tag) for name, count in counts.items()}


def parts_in(text: str) -> list[str]:
    return [
        _FIELD_OF_LETTER[match.group(1)]
        for match in _PLACEHOLDER.finditer(text)
        if match.group(1) in _FIELD_OF_LETTER
    ]


def lead(slot: str) -> str:
    """The part of a slot whose placeholder is widened to change the slot's width."""
    return slot.split("+")[0]


def field_of(part: str) -> str:
    return "name" if part.startswith("name") else part


def slot_field(slot: str) -> str:
    """The field a slot (the parts one text box draws, joined by "+") prints."""
    return field_of(lead(slot))


def line_mates(drawn: dict[str, DrawnText], slot: str) -> list[str]:
    """The slots drawn on the same line as `slot` (itself included), in `drawn`'s order."""
    return [other for other in drawn if drawn[other].y == drawn[slot].y]


# --- recording what WeasyPrint does with the placeholders -------------------------------------------------


@dataclass
class Marker:
    """Stands in the content stream where a field's text or the QR code's modules go."""

    slot: str


@dataclass
class LineFit:
    """The last `split_first_line` call WeasyPrint made for a placeholder's text: its arguments and result."""

    text: str
    style: Any
    context: Any
    max_width: float | None
    justification_spacing: float
    is_line_start: bool
    width: float
    height: float
    baseline: float
    fits: bool  # the whole text on this line, within the width it was offered


@dataclass
class DrawnText:
    """A text box with placeholders, as `draw_first_line` was asked to draw it."""

    slot: str  # the parts it draws, joined by "+"
    text: str
    x: float
    y: float
    text_overflow: str
    block_ellipsis: Any


@dataclass
class Recording:
    lines: dict[str, LineFit] = field(default_factory=dict)  # by text
    drawn: list[DrawnText] = field(default_factory=list)


_RECORDING: ContextVar[Recording | None] = ContextVar("skeleton_recording", default=None)
_original_draw_first_line = weasyprint_draw_text.draw_first_line
_original_inline_split = weasyprint_inline.split_first_line


def _recording_split_first_line(
    text: str,
    style: Any,
    context: Any,
    max_width: float | None,
    justification_spacing: float,
    is_line_start: bool = True,
    minimum: bool = False,
) -> Any:
    result = _original_inline_split(
        text, style, context, max_width, justification_spacing, is_line_start=is_line_start, minimum=minimum
    )
    record = _RECORDING.get()
    if record is not None and MARK in text:
        _, _, resume, width, height, baseline = result
        record.lines[text] = LineFit(
            text,
            style,
            context,
            max_width,
            justification_spacing,
            is_line_start,
            width,
            height,
            baseline,
            resume is None and (max_width is None or width <= max_width + 1e-6),
        )
    return result


def _recording_draw_first_line(
    stream: Any, textbox: Any, text_overflow: str, block_ellipsis: Any, matrix: Matrix
) -> list[Any]:
    record = _RECORDING.get()
    if record is None or MARK not in textbox.text:
        drawn: list[Any] = _original_draw_first_line(stream, textbox, text_overflow, block_ellipsis, matrix)
        return drawn
    name = "+".join(parts_in(textbox.text))
    _, _, _, _, x, y = matrix.values
    record.drawn.append(DrawnText(name, textbox.text, x, y, text_overflow, block_ellipsis))
    stream.stream.append(Marker(name))
    stream._current_font = None  # the learner's text sets its own font, so the next text box must too
    return []


_installed = False


def install() -> None:
    """Route WeasyPrint's line splitting and text drawing through the recorders (once per process); they
    act only while a skeleton is being recorded, in this thread."""
    global _installed
    if not _installed:
        weasyprint_inline.split_first_line = _recording_split_first_line
        weasyprint_draw_text.draw_first_line = _recording_draw_first_line
        _installed = True


@contextmanager
def recording() -> Iterator[Recording]:
    record = Recording()
    token = _RECORDING.set(record)
    try:
        yield record
    finally:
        _RECORDING.reset(token)


class QRSlotImage(QRCodeImage):
    """The QR code of a skeleton: its size and box, with a marker where the modules go."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.path = Marker("qr")


# --- the fitted content stream ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Linear:
    """A number of the page as base + sum of slope x (width - base width) over the fields it moves with."""

    base: float
    slopes: tuple[tuple[int, float], ...]

    def at(self, deltas: Sequence[float]) -> float:
        return self.base + sum(slope * deltas[index] for index, slope in self.slopes)


def _fit(values: Sequence[float], widened: Sequence[float]) -> Linear:
    """values[0] at the base widths, values[1 + i] with slot i widened by widened[i]."""
    base = values[0]
    slopes = tuple(
        (index, (values[1 + index] - base) / change)
        for index, change in enumerate(widened)
        if values[1 + index] != base
    )
    return Linear(base, slopes)


def pdf_number(value: float) -> bytes:
    """A number as pydyf writes it."""
    written: bytes = pydyf._to_bytes(float(value))
    return written


@dataclass(frozen=True)
class Region:
    """Content between two markers: constant bytes and fitted numbers, in order."""

    parts: tuple[bytes | Linear, ...]

    def write(self, deltas: Sequence[float]) -> bytes:
        return b"".join(
            part if isinstance(part, bytes) else pdf_number(part.at(deltas)) for part in self.parts
        )


def fit_region(variants: Sequence[bytes], widened: Sequence[float]) -> Region:
    """The base region's bytes, with each number that differs between the variants fitted."""
    token_lists = [list(_TOKEN.finditer(data)) for data in variants]
    if len({len(tokens) for tokens in token_lists}) != 1:
        raise NotThisShape("the page's drawing changes with the fields' widths, not only its numbers")
    base = variants[0]
    parts: list[bytes | Linear] = []
    position = 0
    for index, token in enumerate(token_lists[0]):
        texts = [tokens[index].group() for tokens in token_lists]
        if all(text == texts[0] for text in texts):
            continue
        if not all(_NUMBER.fullmatch(text) for text in texts):
            raise NotThisShape(f"the drawing differs between placeholders: {texts[0][:40]!r}")
        parts.append(base[position : token.start()])
        parts.append(_fit([float(text) for text in texts], widened))
        position = token.end()
    parts.append(base[position:])
    return Region(tuple(part for part in parts if part != b""))


def split_content(items: Sequence[Any]) -> tuple[list[bytes], list[str]]:
    """The content stream's items (bytes and markers) as the regions between markers and the markers."""
    regions: list[list[bytes]] = [[]]
    markers: list[str] = []
    for item in items:
        if isinstance(item, Marker):
            markers.append(item.slot)
            regions.append([])
        else:
            regions[-1].append(pydyf._to_bytes(item))
    # pydyf joins a stream's items with newlines; a marker is one item of its own
    return [b"\n".join(chunks) for chunks in regions], markers


def same_drawing(expected: bytes, actual: bytes) -> bool:
    """The same tokens, numbers within FIT_TOLERANCE of each other."""
    first, second = _TOKEN.findall(expected), _TOKEN.findall(actual)
    if len(first) != len(second):
        return False
    for one, other in zip(first, second, strict=True):
        if one == other:
            continue
        if not (_NUMBER.fullmatch(one) and _NUMBER.fullmatch(other)):
            return False
        if abs(float(one) - float(other)) > FIT_TOLERANCE:
            return False
    return True


def draw_line(stream: Stream, textbox: Any, slot: FieldSlot, matrix: Matrix) -> None:
    """What WeasyPrint's `draw_text` does around `draw_first_line` for the text itself."""
    textbox.pango_layout.reactivate(textbox.style)
    try:
        _original_draw_first_line(stream, textbox, slot.text_overflow, slot.block_ellipsis, matrix)
    finally:
        textbox.pango_layout.deactivate()


# --- the skeleton -----------------------------------------------------------------------------------------


@dataclass
class RecordedPage:
    """One render of the shape with placeholders: their values, what was recorded, the PDF before writing."""

    values: dict[str, str]
    lines: dict[str, LineFit]  # field -> its line
    drawn: dict[str, DrawnText]  # field -> its text box
    pdf: pydyf.PDF
    fonts: dict[Any, Any]  # the document's WeasyPrint fonts: what the rule's text uses of each face
    page_width: float


@dataclass
class FieldSlot:
    """One text box with learner's text: the parts it draws, and how it is placed."""

    line: LineFit  # the base render's line, whose arguments every learner's text is split with
    parts: tuple[str, ...]
    x: Linear
    y: float
    text_overflow: str
    block_ellipsis: Any


@dataclass
class Face:
    """A face the fields draw with: the glyphs of the rule's text and the seeds in it, its object numbers,
    and its objects for those glyphs alone (made when first needed)."""

    key: Any
    to_unicode: dict[int, str]
    widths: dict[int, int]
    first_number: int
    seeded: tuple[bytes, dict[int, bytes]] | None = None


@dataclass
class Skeleton:
    regions: list[Region]
    markers: list[str]
    slots: dict[str, FieldSlot]
    order: list[str]  # the slots, in the order of the widths the numbers are fitted to
    base_widths: list[float]
    faces: dict[str, Face]  # font hash -> face the fields use
    static_fonts: dict[str, bytes]  # font hash -> reference, for the faces only the rule's text uses
    head: bytes  # header, the static streams and the object stream, as written
    xref: dict[int, tuple[int, int, int]]  # object number -> cross-reference entry, for the static part
    numbers: dict[str, int]  # the per-certificate objects' numbers
    catalog: bytes
    embedded_extra: dict[str, Any] | None
    digest: bytes
    lines: list[tuple[tuple[str, ...], float]] = field(default_factory=list)  # slots of a line, widest
    whole_name: bool = False  # the name is one text box, whatever its number of words


def write_object(number: int, data: bytes) -> bytes:
    return f"{number} 0 obj\n".encode() + data + b"\nendobj\n"


def stream_object(number: int, deflated: bytes, extra: dict[str, Any]) -> bytes:
    stream = pydyf.Stream([deflated], pydyf.Dictionary({**extra, "Filter": "/FlateDecode"}))
    return write_object(number, stream.data)


def raw_stream(pdf_object: pydyf.Stream) -> bytes:
    items = pdf_object.stream
    return items[0] if len(items) == 1 else b"\n".join(pydyf._to_bytes(item) for item in items)


def written_stream(number: int, pdf_object: pydyf.Stream) -> bytes:
    """A stream of WeasyPrint's, deflated at DEFLATE_LEVEL if it asked for compression."""
    if not pdf_object.compress:
        return write_object(number, pdf_object.data)
    extra = {key: value for key, value in pdf_object.extra.items() if key != "Filter"}
    return stream_object(number, zlib.compress(raw_stream(pdf_object), DEFLATE_LEVEL), extra)


def reference_number(reference: Any) -> int:
    return int(pydyf._to_bytes(reference).split()[0])


def page_objects(pdf: pydyf.PDF) -> tuple[Any, Any]:
    pages = [
        item for item in pdf.objects if isinstance(item, pydyf.Dictionary) and item.get("Type") == "/Page"
    ]
    if len(pages) != 1:
        raise NotThisShape("the certificate is not one page")
    page = pages[0]
    return page, pdf.objects[reference_number(page["Contents"])]


def font_objects(pdf: pydyf.PDF, fonts_dictionary: Any) -> dict[str, list[int]]:
    """Each font resource's objects: Type0 font, ToUnicode, CIDFont, descriptor, font file."""
    found = {}
    for name, reference in fonts_dictionary.items():
        type0 = reference_number(reference)
        descendant = reference_number(pdf.objects[type0]["DescendantFonts"][0])
        descriptor = reference_number(pdf.objects[descendant]["FontDescriptor"])
        file_key = next(key for key in ("FontFile2", "FontFile3") if key in pdf.objects[descriptor])
        found[name] = [
            type0,
            reference_number(pdf.objects[type0]["ToUnicode"]),
            descendant,
            descriptor,
            reference_number(pdf.objects[descriptor][file_key]),
        ]
    return found


def comparable(pdf_object: Any) -> bytes:
    if isinstance(pdf_object, pydyf.Stream):
        return pydyf.Dictionary(pdf_object.extra).data + raw_stream(pdf_object)
    return pdf_object.data if pdf_object is not None else b""


def learner_values(request: CertificateRenderRequest) -> dict[str, str]:
    """The parts a learner's certificate adds to its shape (the name word by word); each must be plain
    text of the repertoire."""
    fields = {
        "name": request.learner_name,
        "date": format_date(request.issued_on, request.language),
        "code": request.verification_code,
        "credential": request.credential_id,
        "url": request.verify_url,
    }
    for name, value in fields.items():
        if (
            not value
            or value != " ".join(value.split())
            or not all(ord(char) in REPERTOIRE for char in value)
        ):
            raise NotThisShape(f"the {name} holds characters the skeleton does not handle")
        if MARK in value:
            raise NotThisShape(f"the {name} holds the placeholder mark")
    words = {f"name{index}": word for index, word in enumerate(request.learner_name.split(" "))}
    return {**words, **fields}  # "name", the whole name, too


LEARNER_FIELDS = {"learner_name", "verification_code", "credential_id", "verify_url", "issued_on"}


def shape_key(request: CertificateRenderRequest, qr_size: int, words: int | None = None) -> str:
    """What a skeleton depends on: everything in the request but the learner's fields, and, for a template
    that prints the name word by word, how many words it has."""
    rest = request.model_dump(mode="json", exclude=LEARNER_FIELDS | {"credential_json", "rerender"})
    shape = {**rest, "attachment": request.credential_json is not None, "qr": qr_size}
    return json.dumps([shape, name_size(request.learner_name), words], sort_keys=True, ensure_ascii=False)


def base_parts(words: int) -> list[str]:
    return [*(f"name{index}" for index in range(words)), "date", "code", "credential", "url"]


def skeleton_context(
    request: CertificateRenderRequest, values: dict[str, str], name_class: str
) -> dict[str, Any]:
    words = [values[part] for part in sorted(values) if part.startswith("name")]
    with_placeholders = request.model_copy(
        update={
            "learner_name": " ".join(words),
            "verification_code": values["code"],
            "credential_id": values["credential"],
            "verify_url": values["url"],
        }
    )
    context = template_context(with_placeholders)
    context.update(issued_date=values["date"], name_class=name_class, qr_src=QR_SLOT_SRC)
    return context


def xmp(metadata: DocumentMetadata) -> bytes:
    """The XMP packet WeasyPrint writes for PDF/A-3b, with the PDF/UA identification."""
    rdf = metadata.generate_rdf_metadata("a", 3, "B").replace(b"</rdf:RDF>", XMP_PDF_UA + b"</rdf:RDF>")
    return b"\n".join((XMP_HEADER, rdf, XMP_FOOTER))


def info(metadata: DocumentMetadata) -> pydyf.Dictionary:
    """The document information dictionary WeasyPrint writes."""
    return pydyf.Dictionary(
        {
            "Producer": pydyf.String(f"WeasyPrint {weasyprint_version}"),
            "Title": pydyf.String(metadata.title),
            "Author": pydyf.String(", ".join(metadata.authors)),
            "Subject": pydyf.String(metadata.description),
            "Keywords": pydyf.String(", ".join(metadata.keywords)),
            "CreationDate": pydyf.String(w3c_date_to_pdf(metadata.created, "created")),
            "ModDate": pydyf.String(w3c_date_to_pdf(metadata.modified, "modified")),
        }
    )


def assemble(skeleton: Skeleton, objects: dict[int, bytes], identifier: bytes) -> bytes:
    """The skeleton's head, the certificate's own objects and a cross-reference stream."""
    out = io.BytesIO()
    out.write(skeleton.head)
    xref = dict(skeleton.xref)
    for number, data in sorted(objects.items()):
        xref[number] = (1, out.tell(), 0)
        out.write(data)
    xref_number = max(xref) + 1
    xref[xref_number] = (1, out.tell(), 0)
    rows = b"".join(struct.pack(">BIH", *xref.get(number, (0, 0, 0))) for number in range(xref_number + 1))
    extra = {
        "Type": "/XRef",
        "Index": pydyf.Array((0, xref_number + 1)),
        "W": pydyf.Array((1, 4, 2)),
        "Size": xref_number + 1,
        "Root": skeleton.catalog,
        "Info": f"{skeleton.numbers['info']} 0 R",
        "ID": pydyf.Array((b"<" + identifier + b">", b"<" + identifier + b">")),
    }
    out.write(stream_object(xref_number, zlib.compress(rows, DEFLATE_LEVEL), extra))
    out.write(b"startxref\n" + str(xref[xref_number][1]).encode() + b"\n%%EOF\n")
    return out.getvalue()


class Captured(Exception):
    """Raised by the finisher once the skeleton page's PDF objects are recorded: no need to write them."""


class Skeletons:
    """Skeletons by shape, and the fonts the learners' fields are drawn with (one set per renderer)."""

    def __init__(
        self,
        lay_out: Callable[[CertificateRenderRequest, list[dict[str, Any]], dict[str, Any]], Document],
        write_page: Callable[[Document, Any, CertificateRenderRequest, Callable[..., None]], bytes],
        repertoire: Any,
    ) -> None:
        install()
        self._lay_out = lay_out
        self._write_page = write_page
        self._repertoire = repertoire
        self._skeletons: dict[str, Skeleton | None] = {}
        self._fonts: dict[Any, Any] = {}  # Pango font key -> WeasyPrint Font, for drawing the fields
        self.full_renders: dict[str, int] = {}  # why certificates were rendered in full, counted

    def render(self, request: CertificateRenderRequest) -> bytes | None:
        """The certificate's PDF, or None when it must be rendered in full."""
        try:
            values = learner_values(request)
            qr = QRCodeImage(request.verify_url)
            skeleton = self._skeleton(request, qr.size)
            return self._write(skeleton, request, values, qr)
        except NotThisShape as reason:
            self.full_renders[str(reason)] = self.full_renders.get(str(reason), 0) + 1
            return None

    # -- per certificate --

    def _write(
        self, skeleton: Skeleton, request: CertificateRenderRequest, values: dict[str, str], qr: QRCodeImage
    ) -> bytes:
        drawn, deltas, used = self._draw_fields(skeleton, values)
        items = [skeleton.regions[0].write(deltas)]
        for marker, region in zip(skeleton.markers, skeleton.regions[1:], strict=True):
            items.append(qr.path if marker == "qr" else drawn[marker])
            items.append(region.write(deltas))
        numbers = skeleton.numbers
        objects = {
            numbers["content"]: stream_object(
                numbers["content"], zlib.compress(b"\n".join(items), DEFLATE_LEVEL), {}
            )
        }
        font_references = dict(skeleton.static_fonts)
        objects.update(self._font_objects(skeleton, used, font_references))
        fonts = pydyf.Dictionary(dict(sorted(font_references.items())))
        objects[numbers["fonts"]] = write_object(numbers["fonts"], fonts.data)
        metadata = certificate_metadata(request)
        packet = zlib.compress(xmp(metadata), DEFLATE_LEVEL)
        objects[numbers["metadata"]] = stream_object(numbers["metadata"], packet, METADATA)
        if skeleton.embedded_extra is not None:
            objects[numbers["attachment"]] = self._attachment(skeleton, request)
        objects[numbers["info"]] = write_object(numbers["info"], info(metadata).data)
        identifier = hashlib.md5(skeleton.digest, usedforsecurity=False)
        for number in sorted(objects):
            identifier.update(objects[number])
        return assemble(skeleton, objects, identifier.hexdigest().encode())

    def _draw_fields(
        self, skeleton: Skeleton, values: dict[str, str]
    ) -> tuple[dict[str, bytes], list[float], dict[str, dict[int, tuple[str, int]]]]:
        """Each slot's text drawn as WeasyPrint draws it, the width changes, and the glyphs used per face."""
        layouts = {}
        widths = {}
        for slot_id in skeleton.order:
            slot = skeleton.slots[slot_id]
            line = slot.line
            text = line.text
            if skeleton.whole_name and slot_field(slot_id) == "name":  # any number of words
                name_parts = " ".join(placeholder(part, NARROW) for part in slot.parts)
                text = text.replace(name_parts, values["name"])
            else:
                for part in slot.parts:
                    text = text.replace(placeholder(part, NARROW), values[part])
            layout, _, resume, width, height, baseline = split_first_line(
                text, line.style, line.context, None, line.justification_spacing, line.is_line_start
            )
            if resume is not None:
                raise NotThisShape(f"the {slot_field(slot_id)} is wider than the skeleton was checked for")
            if abs(height - line.height) > 1e-6 or abs(baseline - line.baseline) > 1e-6:
                raise NotThisShape(f"the {slot_field(slot_id)} changes its line's height")
            layouts[slot_id] = (text, layout)
            widths[slot_id] = width
        deltas = [
            widths[slot_id] - base for slot_id, base in zip(skeleton.order, skeleton.base_widths, strict=True)
        ]
        for group, widest in skeleton.lines:
            if sum(widths[slot_id] for slot_id in group) > widest + 1e-6:
                raise NotThisShape(f"the {slot_field(group[0])} is wider than the skeleton was checked for")
        for font in self._fonts.values():
            font.to_unicode, font.widths = {}, {}
        drawn = {}
        for slot_id, (text, layout) in layouts.items():
            slot = skeleton.slots[slot_id]
            stream = Stream(self._fonts, None, {}, {}, None, {}, None)
            textbox = SimpleNamespace(text=text, style=slot.line.style, pango_layout=layout)
            draw_line(stream, textbox, slot, Matrix(d=-1, e=slot.x.at(deltas), f=slot.y))
            drawn[slot_id] = b"\n".join(pydyf._to_bytes(item) for item in stream.stream)
        used: dict[str, dict[int, tuple[str, int]]] = {}
        for font in self._fonts.values():
            if not font.to_unicode:
                continue
            if font.hash not in skeleton.faces or font.missing or font.bitmap:
                raise NotThisShape("a field needs a face the skeleton does not have")
            used[font.hash] = {
                glyph: (font.to_unicode[glyph], font.widths[glyph]) for glyph in font.to_unicode
            }
        return drawn, deltas, used

    def _font_objects(
        self, skeleton: Skeleton, used: dict[str, dict[int, tuple[str, int]]], references: dict[str, bytes]
    ) -> dict[int, bytes]:
        """The field faces' objects, at fixed numbers: a face whose glyphs here are all among its seeded
        ones is the same subset for every certificate of the shape; others get the learner's glyphs too."""
        written = {}
        for font_hash, face in sorted(skeleton.faces.items()):
            glyphs = used.get(font_hash, {})
            if all(glyph in face.to_unicode for glyph in glyphs):
                if face.seeded is None:
                    face.seeded = self._face_objects(face, {})
                reference, objects = face.seeded
            else:
                reference, objects = self._face_objects(face, glyphs)
            references[font_hash] = reference
            written.update(objects)
        return written

    def _face_objects(self, face: Face, glyphs: dict[int, tuple[str, int]]) -> tuple[bytes, dict[int, bytes]]:
        """One face's five objects (font, ToUnicode, CIDFont, descriptor, font file), as WeasyPrint makes
        them."""
        font = self._fonts[face.key]
        to_unicode = {**face.to_unicode, **{glyph: text for glyph, (text, _) in glyphs.items()}}
        widths = {**face.widths, **{glyph: width for glyph, (_, width) in glyphs.items()}}
        font.to_unicode, font.widths = dict(sorted(to_unicode.items())), dict(sorted(widths.items()))
        scratch = pydyf.PDF()
        scratch.objects = [None] * face.first_number  # the next object added gets this number
        full = font.file_content
        try:
            with self._repertoire.active():
                dictionary = build_fonts_dictionary(scratch, {face.key: font}, True, True, FONT_OPTIONS)
        finally:
            font.file_content = full
        written = {}
        for pdf_object in scratch.objects[face.first_number :]:
            if isinstance(pdf_object, pydyf.Stream):
                written[pdf_object.number] = written_stream(pdf_object.number, pdf_object)
            else:
                written[pdf_object.number] = write_object(pdf_object.number, pdf_object.data)
        if len(written) != FACE_OBJECTS:
            raise NotThisShape("WeasyPrint wrote a face as other objects than expected")
        return pydyf._to_bytes(dictionary[font.hash]), written

    def _attachment(self, skeleton: Skeleton, request: CertificateRenderRequest) -> bytes:
        """The signed credential, as WeasyPrint embeds an attachment."""
        assert skeleton.embedded_extra is not None and request.credential_json is not None
        data = request.credential_json.encode()
        moment = pydyf.String(request.issued_on.strftime("D:%Y%m%d%H%M%SZ"))
        checksum = hashlib.md5(data, usedforsecurity=False).hexdigest()
        params = pydyf.Dictionary(
            {"CheckSum": f"<{checksum}>", "Size": len(data), "CreationDate": moment, "ModDate": moment}
        )
        extra = {**skeleton.embedded_extra, "Params": params}
        number = skeleton.numbers["attachment"]
        return stream_object(number, zlib.compress(data, DEFLATE_LEVEL), extra)

    # -- per shape --

    def _skeleton(self, request: CertificateRenderRequest, qr_size: int) -> Skeleton:
        """The shape's skeleton: first built with a two-word name; a template that prints the name as one
        text box then needs no other, one that prints it word by word gets one per number of words."""
        skeleton = self._built(shape_key(request, qr_size), request, qr_size, WHOLE_NAME_WORDS)
        words = len(request.learner_name.split())
        if skeleton is not None and not skeleton.whole_name and words != WHOLE_NAME_WORDS:
            if words > MAX_NAME_WORDS:
                raise NotThisShape("the name has more words than the skeleton handles")
            skeleton = self._built(shape_key(request, qr_size, words), request, qr_size, words)
        if skeleton is None:
            raise NotThisShape("no skeleton for this shape")
        return skeleton

    def _built(
        self, key: str, request: CertificateRenderRequest, qr_size: int, words: int
    ) -> Skeleton | None:
        if key not in self._skeletons:
            if len(self._skeletons) >= MAX_SKELETONS:  # the oldest goes: rebuilt the same if it comes back
                del self._skeletons[next(iter(self._skeletons))]
            try:
                self._skeletons[key] = self._build(request, qr_size, words)
            except NotThisShape as reason:
                self.full_renders[f"shape: {reason}"] = 0
                self._skeletons[key] = None
        return self._skeletons[key]

    def _build(self, request: CertificateRenderRequest, qr_size: int, words: int) -> Skeleton:
        name_class = name_size(request.learner_name)
        parts = base_parts(words)
        base = {part: placeholder(part, NARROW) for part in parts}
        (base_page,) = self._record(request, name_class, qr_size, [base])
        order = sorted(base_page.drawn)
        widest = self._widest_fillers(request, name_class, qr_size, base_page)
        # one variant per slot, its first part widened; then a check with every slot at half its widest
        # (the slots of one line together at half what one alone got)
        variants = [{**base, lead(slot): placeholder(lead(slot), widest[lead(slot)])} for slot in order]
        halves = {
            lead(slot): max(NARROW + 1, widest[lead(slot)] // (2 * len(line_mates(base_page.drawn, slot))))
            for slot in order
        }
        check = {**base, **{part: placeholder(part, count) for part, count in halves.items()}}
        pages = [base_page, *self._record(request, name_class, qr_size, [*variants, check])]
        return self._assemble(pages, order, request.language)

    def _widest_fillers(
        self, request: CertificateRenderRequest, name_class: str, qr_size: int, base: RecordedPage
    ) -> dict[str, int]:
        """Per slot, the longest filler of its first part that still leaves the slot's text on one line (the
        other parts as in the base render): laid out, not written, at PROBE_SHARES of the page's width, all
        slots at once, then bisected. Slots drawn on one line (a name word by word) share it."""
        slots = list(base.drawn)
        together = {slot: line_mates(base.drawn, slot) for slot in slots}

        def level_for(widths: dict[str, int]) -> dict[str, int]:
            return {
                **dict.fromkeys(base.values, NARROW),
                **{lead(slot): count for slot, count in widths.items()},
            }

        def fits_at(record: Recording, slot: str, counts: dict[str, int], tag: int) -> bool:
            return all(
                fits(record, lead(other), counts[other], base.lines[other].is_line_start, tag)
                for other in together[slot]
            )

        levels = [
            {
                slot: self._filler_for(
                    base.lines[slot], lead(slot), share * base.page_width / len(together[slot])
                )
                for slot in slots
            }
            for share in PROBE_SHARES
        ]
        record = self._probe(request, name_class, qr_size, [level_for(level) for level in levels])
        low, high = {}, {}
        for slot in slots:
            fitting = [
                level[slot] for tag, level in enumerate(levels, 1) if fits_at(record, slot, level, tag)
            ]
            if not fitting or max(fitting) <= NARROW + 1:
                raise NotThisShape(f"no room to check the {slot_field(slot)} at other widths")
            low[slot] = max(fitting)
            if len(together[slot]) > 1:  # alone on its line it may get wider than with the others
                starts = [
                    base.lines[other].max_width for other in together[slot] if base.lines[other].is_line_start
                ]
                line_width = starts[0] if starts and starts[0] is not None else base.page_width
                high[slot] = self._filler_for(base.lines[slot], lead(slot), line_width) + 1
            else:
                high[slot] = min(
                    [level[slot] for level in levels if level[slot] > low[slot]], default=MAX_FILLER
                )
        alone = [slot for slot in slots if len(together[slot]) == 1]
        shared = [slot for slot in slots if len(together[slot]) > 1]
        for _ in range(BISECTIONS):  # then closer to where lines are full, a shared line's slots one by one
            middle = {slot: (low[slot] + high[slot]) // 2 for slot in slots}
            pages = [{slot: middle[slot] if slot in alone else NARROW for slot in slots}]
            pages += [{**dict.fromkeys(slots, NARROW), slot: middle[slot]} for slot in shared]
            record = self._probe(request, name_class, qr_size, [level_for(page) for page in pages])
            for slot in slots:
                page_index = 0 if slot in alone else 1 + shared.index(slot)
                if fits_at(record, slot, pages[page_index], page_index + 1):
                    low[slot] = middle[slot]
                else:
                    high[slot] = middle[slot]
        return {lead(slot): count for slot, count in low.items()}

    def _probe(
        self, request: CertificateRenderRequest, name_class: str, qr_size: int, levels: list[dict[str, int]]
    ) -> Recording:
        contexts = [
            skeleton_context(request, level_values(level, tag), name_class)
            for tag, level in enumerate(levels, 1)
        ]
        with recording() as record:
            self._lay_out(request, contexts, {QR_SLOT_SRC: QRSlotImage(qr_size)})
        return record

    def _filler_for(self, line: LineFit, part: str, width: float) -> int:
        """The filler count that makes the part's placeholder alone about `width` wide on its line."""
        base = line.text.replace(placeholder(part, NARROW), placeholder(part, 0))
        wider = line.text.replace(placeholder(part, NARROW), placeholder(part, 30))
        per_filler = (self._width(line, wider) - self._width(line, base)) / 30
        return max(NARROW + 1, min(MAX_FILLER, int(width / per_filler)))

    def _width(self, line: LineFit, text: str) -> float:
        return float(split_first_line(text, line.style, line.context, None, line.justification_spacing)[3])

    def _record(
        self, request: CertificateRenderRequest, name_class: str, qr_size: int, pages: list[dict[str, str]]
    ) -> list[RecordedPage]:
        contexts = [skeleton_context(request, values, name_class) for values in pages]
        with recording() as layout_record:
            document = self._lay_out(request, contexts, {QR_SLOT_SRC: QRSlotImage(qr_size)})
        if len(document.pages) != len(pages):
            raise NotThisShape("a certificate does not fill exactly one page")
        recorded = []
        for values, page in zip(pages, document.pages, strict=True):
            captured: list[tuple[pydyf.PDF, dict[Any, Any]]] = []

            def capture(written: Document, pdf: pydyf.PDF, into: list[Any] = captured) -> None:
                declare_pdf_ua(written, pdf)
                into.append((pdf, dict(written.fonts)))
                raise Captured

            with recording() as page_record, suppress(Captured):
                self._write_page(document, page, request, capture)
            drawn = {text.slot: text for text in page_record.drawn}
            drawn_parts = sorted(part for slot in drawn for part in slot.split("+") if part)
            if len(drawn) != len(page_record.drawn) or drawn_parts != sorted(values):
                raise NotThisShape("the template does not draw each field once, as text")
            lines = {}
            for slot in drawn:
                texts = [values[part] for part in slot.split("+")]
                found = [
                    line
                    for text, line in layout_record.lines.items()
                    if "+".join(parts_in(text)) == slot and all(t in text for t in texts)
                ]
                if len(found) != 1:
                    raise NotThisShape(
                        f"the template does not print the {slot_field(slot)} on a line of its own"
                    )
                lines[slot] = found[0]
            pdf, fonts = captured[0]
            recorded.append(RecordedPage(values, lines, drawn, pdf, fonts, page.width))
        return recorded

    def _assemble(self, pages: list[RecordedPage], order: list[str], language: str) -> Skeleton:
        base, variants, check = pages[0], pages[1:-1], pages[-1]
        for page in pages:
            if sorted(page.drawn) != order:
                raise NotThisShape("the fields' text boxes change with their widths")
        base_widths = [base.lines[slot].width for slot in order]
        base_deltas = [
            [page.lines[slot].width - base_widths[index] for index, slot in enumerate(order)]
            for page in variants
        ]
        check_deltas = [check.lines[slot].width - base_widths[index] for index, slot in enumerate(order)]
        for index, deltas in enumerate(base_deltas):
            if deltas[index] <= 0 or any(delta != 0 for other, delta in enumerate(deltas) if other != index):
                raise NotThisShape("a placeholder's width did not change as asked")
        widened = [base_deltas[index][index] for index in range(len(order))]
        regions, markers = self._fit_content(pages, order, widened, check_deltas)
        slots = {}
        for slot_id in order:
            x = _fit([base.drawn[slot_id].x, *(page.drawn[slot_id].x for page in variants)], widened)
            if abs(x.at(check_deltas) - check.drawn[slot_id].x) > FIT_TOLERANCE:
                raise NotThisShape(
                    f"the {slot_field(slot_id)}'s position does not follow the widths linearly"
                )
            if any(page.drawn[slot_id].y != base.drawn[slot_id].y for page in pages):
                raise NotThisShape(f"the {slot_field(slot_id)}'s line moves up or down with the widths")
            drawn = base.drawn[slot_id]
            slots[slot_id] = FieldSlot(
                base.lines[slot_id],
                tuple(slot_id.split("+")),
                x,
                drawn.y,
                drawn.text_overflow,
                drawn.block_ellipsis,
            )
        lines = []  # the slots of each line, and the widest they were checked at together
        for slot_id in order:
            group = tuple(other for other in order if other in line_mates(base.drawn, slot_id))
            if group[0] == slot_id:
                # a variant widens one slot of the line, the others as in the base render
                together = sum(base_widths[order.index(other)] for other in group)
                widest = together + max(widened[order.index(other)] for other in group)
                lines.append((group, widest))
        skeleton = self._objects(base, pages, regions, markers, slots, order, base_widths, language)
        skeleton.lines = lines
        name_slots = [slot_id for slot_id in order if slot_field(slot_id) == "name"]
        skeleton.whole_name = len(name_slots) == 1 and len(name_slots[0].split("+")) == WHOLE_NAME_WORDS
        return skeleton

    def _fit_content(
        self, pages: list[RecordedPage], order: list[str], widened: list[float], check_deltas: list[float]
    ) -> tuple[list[Region], list[str]]:
        """The base page's content stream between markers, its numbers fitted to the variants' and checked."""
        split = [split_content(page_objects(page.pdf)[1].stream) for page in pages]
        markers = split[0][1]
        if sorted(markers) != sorted([*order, "qr"]) or any(other != markers for _, other in split):
            raise NotThisShape("the page does not draw each field and the QR code once")
        regions = []
        for index in range(len(markers) + 1):
            region = fit_region([regions_of[index] for regions_of, _ in split[:-1]], widened)
            if not same_drawing(region.write(check_deltas), split[-1][0][index]):
                raise NotThisShape("the page's numbers do not follow the fields' widths linearly")
            regions.append(region)
        return regions, markers

    def _field_faces(
        self, slots: dict[str, FieldSlot], language: str
    ) -> dict[str, tuple[Any, dict[int, str], dict[int, int]]]:
        """Font hash -> (Pango font key, seed glyphs, their widths) of the faces the fields are drawn with."""
        for font in self._fonts.values():
            font.to_unicode, font.widths = {}, {}
        for slot_id, slot in slots.items():
            name = slot_field(slot_id)
            seed = SEEDS[name] + (month_names(language) if name == "date" else "")
            for text in (slot.line.text, seed):
                if not text:
                    continue
                line = slot.line
                layout = split_first_line(text, line.style, line.context, None, line.justification_spacing)[0]
                stream = Stream(self._fonts, None, {}, {}, None, {}, None)
                draw_line(
                    stream, SimpleNamespace(text=text, style=line.style, pango_layout=layout), slot, Matrix()
                )
        faces = {}
        for key, font in self._fonts.items():
            if font.to_unicode:
                seeds = {glyph: text for glyph, text in font.to_unicode.items() if MARK not in text}
                faces[font.hash] = (key, seeds, {glyph: font.widths[glyph] for glyph in seeds})
        return faces

    def _objects(
        self,
        base: RecordedPage,
        pages: list[RecordedPage],
        regions: list[Region],
        markers: list[str],
        slots: dict[str, FieldSlot],
        order: list[str],
        base_widths: list[float],
        language: str,
    ) -> Skeleton:
        """What the base page's PDF keeps for every learner, serialized; the rest gets fixed numbers."""
        pdf = base.pdf
        page, content = page_objects(pdf)
        resources = pdf.objects[reference_number(page["Resources"])]
        numbers = {
            "content": content.number,
            "metadata": reference_number(pdf.catalog["Metadata"]),
            "fonts": reference_number(resources["Font"]),
            "info": len(pdf.objects),
        }
        embedded = [
            item
            for item in pdf.objects
            if isinstance(item, pydyf.Stream) and item.extra.get("Type") == "/EmbeddedFile"
        ]
        if len(embedded) > 1:
            raise NotThisShape("more than one attachment")
        embedded_extra = None
        if embedded:
            numbers["attachment"] = embedded[0].number
            embedded_extra = {key: embedded[0].extra[key] for key in ("Type", "Subtype")}
        fonts_dictionary = pdf.objects[numbers["fonts"]]
        objects_of_font = font_objects(pdf, fonts_dictionary)
        field_faces = self._field_faces(slots, language)
        static_glyphs = {font.hash: font for font in base.fonts.values()}
        first_font_number = len(pdf.objects) + 2  # after the information dictionary and the object stream
        faces = {}
        for index, (font_hash, (key, seed_text, seed_widths)) in enumerate(sorted(field_faces.items())):
            static = static_glyphs.get(font_hash)
            faces[font_hash] = Face(
                key,
                {**seed_text, **(static.to_unicode if static else {})},
                {**seed_widths, **(static.widths if static else {})},
                first_font_number + FACE_OBJECTS * index,
            )
        static_fonts = {
            name: pydyf._to_bytes(reference)
            for name, reference in fonts_dictionary.items()
            if name not in faces
        }
        per_certificate = set(numbers.values())
        dropped = {number for name in faces for number in objects_of_font.get(name, [])}
        for page_record in pages[1:]:
            if len(page_record.pdf.objects) != len(pdf.objects):
                raise NotThisShape("the PDF's objects change with the fields' widths")
            for number in range(1, len(pdf.objects)):
                if number in per_certificate or number in dropped:
                    continue
                if comparable(pdf.objects[number]) != comparable(page_record.pdf.objects[number]):
                    raise NotThisShape("the PDF's objects change with the fields' widths")
        head = io.BytesIO()
        head.write(b"%PDF-1.7\n%\xf0\x9f\x96\xa4\n")
        xref: dict[int, tuple[int, int, int]] = {0: (0, 0, 65535)}
        packed_number = len(pdf.objects) + 1
        packed: list[tuple[int, bytes]] = []
        for number in range(1, len(pdf.objects)):
            if number in per_certificate or number in dropped:
                continue
            pdf_object = pdf.objects[number]
            if isinstance(pdf_object, pydyf.Stream):
                xref[number] = (1, head.tell(), 0)
                head.write(written_stream(number, pdf_object))
            else:
                xref[number] = (2, packed_number, len(packed))
                packed.append((number, pdf_object.data))
        offsets, position = [], 0
        for number, serialized in packed:
            offsets.append(f"{number} {position}")
            position += len(serialized) + 1
        directory = " ".join(offsets).encode()
        body = b"\n".join([directory, *(serialized for _, serialized in packed)])
        extra = {"Type": "/ObjStm", "N": len(packed), "First": len(directory) + 1}
        xref[packed_number] = (1, head.tell(), 0)
        head.write(stream_object(packed_number, zlib.compress(body, DEFLATE_LEVEL), extra))
        data = head.getvalue()
        return Skeleton(
            regions=regions,
            markers=markers,
            slots=slots,
            order=order,
            base_widths=base_widths,
            faces=faces,
            static_fonts=static_fonts,
            head=data,
            xref=xref,
            numbers=numbers,
            catalog=pdf.catalog.reference,
            embedded_extra=embedded_extra,
            digest=hashlib.sha256(data).digest(),
        )


# Characters each field's faces carry beyond the rule's text, so that the faces of most certificates are
# the same few subsets, made once per skeleton: the code's alphabet, a UUID, an address, the date's digits
# (and, per language, the month names). The name's face is subset per certificate.
SEEDS = {
    "name": "",
    "date": string.digits + " .",
    "code": string.ascii_uppercase + string.digits + "-",
    "credential": "0123456789abcdef-:urnid",
    "url": string.ascii_letters + string.digits + ":/.-_",
}
FACE_OBJECTS = 5  # a face WeasyPrint embeds: Type0 font, ToUnicode, CIDFont, descriptor, font file
FONT_OPTIONS = {"hinting": False, "pdf_version": "1.7"}
