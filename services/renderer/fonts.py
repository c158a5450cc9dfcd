"""Font programs shared by every certificate that fits them.

WeasyPrint subsets each font for each PDF (HarfBuzz) and deflates it (zlib level 9, twice: the file ID
hashes the written data). With five faces that is about a fifth of a certificate's render time, spent
again on glyphs that barely change between certificates. So the renderer subsets each face once to a
repertoire (Latin letters with European diacritics, digits, punctuation, and the ligatures and variants
they shape into), deflates it once, and embeds that program in every certificate whose glyphs it holds.
A certificate using a glyph outside it (a Cyrillic name, say) gets WeasyPrint's own subset of that face.
Either way a PDF is a function of its request alone, so rendering stays deterministic.

The price is size: each face carries ~400 glyphs instead of the ~50 a certificate shows (a PDF of
~90 KB instead of ~30 KB).

WeasyPrint has no public hook for this: `install()` wraps `weasyprint.pdf.fonts.Font.subset`, and the
wrapper only acts inside `SharedFonts.active()`, i.e. for the PDFs the renderer writes. `install()` leaves
WeasyPrint alone if that method's signature ever changes; the tests notice the lost sharing.
"""

from __future__ import annotations

import inspect
import io
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import chain
from typing import Any

from fontTools import subset as fonttools_subset
from fontTools.ttLib import TTFont
from weasyprint.pdf import fonts as weasyprint_fonts

# Printable ASCII, Latin-1 and Latin Extended-A letters, dashes, quotes, bullets, ellipsis, per mille,
# guillemets, euro and trade mark signs.
REPERTOIRE = frozenset(
    chain(
        range(0x20, 0x7F), range(0xA0, 0x180), range(0x2010, 0x2028), range(0x2030, 0x203B), (0x20AC, 0x2122)
    )
)

Subset = Callable[[Any, dict[int, str], bool], None]  # weasyprint Font.subset(font, to_unicode, hinting)
_ACTIVE: ContextVar[SharedFonts | None] = ContextVar("shared_fonts", default=None)
_installed = False  # WeasyPrint's Font.subset wrapped (once per process)


@dataclass(frozen=True)
class FontProgram:
    """One face subset to the repertoire, as WeasyPrint would embed it, and deflated."""

    glyphs: frozenset[int]
    data: bytes
    deflated: bytes  # as pydyf would deflate it (zlib level 9)


class SharedFonts:
    """The font programs of one renderer (one per process)."""

    def __init__(self) -> None:
        self._programs: dict[tuple[Any, ...], FontProgram | None] = {}
        self._deflated: dict[int, FontProgram] = {}  # id(program.data) -> program

    @contextmanager
    def active(self) -> Iterator[None]:
        """Share programs in the PDFs written in this block (this thread)."""
        token = _ACTIVE.set(self)
        try:
            yield
        finally:
            _ACTIVE.reset(token)

    def subset(self, font: Any, to_unicode: dict[int, str], hinting: bool, weasyprint_subset: Subset) -> None:
        """In place of WeasyPrint's subsetting: the shared program when it holds every glyph used."""
        program = None if font.missing else self._program(font, hinting, weasyprint_subset)
        if program is not None and program.glyphs.issuperset(to_unicode):
            font.file_content = program.data
        else:
            weasyprint_subset(font, to_unicode, hinting)

    def deflated(self, data: bytes) -> bytes | None:
        """The deflated bytes of a shared program (identified by identity: the bytes WeasyPrint embeds)."""
        program = self._deflated.get(id(data))
        return program.deflated if program is not None and program.data is data else None

    def _program(self, font: Any, hinting: bool, weasyprint_subset: Subset) -> FontProgram | None:
        key = (font.family, font.weight, font.style, font.index, len(font.file_content), hinting)
        if key not in self._programs:
            self._programs[key] = _make_program(font, hinting, weasyprint_subset)
            if (program := self._programs[key]) is not None:
                self._deflated[id(program.data)] = program
        return self._programs[key]


def _make_program(font: Any, hinting: bool, weasyprint_subset: Subset) -> FontProgram | None:
    glyphs = repertoire_glyphs(font.file_content, font.index)
    if not glyphs:
        return None
    full = font.file_content
    try:
        weasyprint_subset(font, dict.fromkeys(sorted(glyphs), ""), hinting)
        data = font.file_content
    finally:
        font.file_content = full
    if data is full:  # WeasyPrint could not subset this face
        return None
    return FontProgram(frozenset(glyphs), data, deflate(data))


def deflate(data: bytes) -> bytes:
    """zlib at level 9, as pydyf deflates streams: the same bytes either way."""
    deflater = zlib.compressobj(level=9)
    return deflater.compress(data) + deflater.flush()


def repertoire_glyphs(font_file: bytes, index: int = 0) -> set[int]:
    """Glyph ids of the repertoire's characters and of everything the font's default OpenType features
    turn them into (ligatures such as "fi", localized forms)."""
    options = fonttools_subset.Options(notdef_outline=True)
    options.drop_tables += ["FFTM"]  # a timestamp table fontTools cannot subset (it logs a warning)
    subsetter = fonttools_subset.Subsetter(options)
    face = TTFont(io.BytesIO(font_file), fontNumber=index)
    glyph_ids = {name: glyph_id for glyph_id, name in enumerate(face.getGlyphOrder())}  # before subsetting
    cmap = face.getBestCmap()
    subsetter.populate(unicodes=[code for code in REPERTOIRE if code in cmap])
    subsetter.subset(face)
    return {glyph_ids[name] for name in subsetter.glyphs_retained}


def install() -> bool:
    """Route WeasyPrint's font subsetting through the active SharedFonts; False if WeasyPrint changed."""
    global _installed
    font_class = weasyprint_fonts.Font
    if _installed:
        return True
    original = font_class.subset
    if list(inspect.signature(original).parameters) != ["self", "to_unicode", "hinting"]:
        return False

    def subset(font: Any, to_unicode: dict[int, str], hinting: bool) -> None:
        shared = _ACTIVE.get()
        if shared is None:
            original(font, to_unicode, hinting)
        else:
            shared.subset(font, to_unicode, hinting, original)

    font_class.subset = subset
    _installed = True
    return True
