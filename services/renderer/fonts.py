"""Font subsets per certificate, made from faces cut down once per process.

WeasyPrint subsets each font for each PDF with HarfBuzz, from the full face (DejaVu Sans: ~6,000 glyphs,
750 KB). The renderer cuts each face once per process to a repertoire (Latin letters with European
diacritics, digits, punctuation, and the ligatures and variants they shape into) and keeps that small
face; each certificate's subset is then made from it, with WeasyPrint's own subsetting (the same flags,
glyph ids kept), so a PDF embeds only the glyphs it shows (~30 KB per certificate instead of ~100 KB with
the whole repertoire embedded) at about a third of the cost of subsetting the full faces. The subsets
are the bytes WeasyPrint makes from the full face (tested).

A certificate using a glyph outside the repertoire (a Cyrillic name, say) gets WeasyPrint's subset of
the full face. Either way a PDF is a function of its request alone, so rendering stays deterministic.

WeasyPrint has no public hook for this: `install()` wraps `weasyprint.pdf.fonts.Font.subset`, and the
wrapper only acts inside `RepertoireFaces.active()`, i.e. for the PDFs the renderer writes. `install()`
leaves WeasyPrint alone if that method's signature ever changes, and the faces are not used if HarfBuzz
cannot be loaded to read them; the tests notice either.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import chain
from typing import Any

import cffi
from fontTools import subset as fonttools_subset
from fontTools.ttLib import TTFont
from weasyprint.pdf import fonts as weasyprint_fonts
from weasyprint.text.ffi import ffi as weasyprint_ffi

# Printable ASCII, Latin-1 and Latin Extended-A letters, dashes, quotes, bullets, ellipsis, per mille,
# guillemets, euro and trade mark signs.
REPERTOIRE = frozenset(
    chain(
        range(0x20, 0x7F), range(0xA0, 0x180), range(0x2010, 0x2028), range(0x2030, 0x203B), (0x20AC, 0x2122)
    )
)
Subset = Callable[[Any, dict[int, str], bool], None]  # weasyprint Font.subset(font, to_unicode, hinting)
_ACTIVE: ContextVar[RepertoireFaces | None] = ContextVar("repertoire_faces", default=None)
_installed = False  # WeasyPrint's Font.subset wrapped (once per process)

_HB = cffi.FFI()
_HB.cdef(
    """
    typedef struct hb_blob_t hb_blob_t;
    typedef struct hb_face_t hb_face_t;
    hb_blob_t *hb_blob_create(const char *data, unsigned int length, int mode, void *user_data,
                              void *destroy);
    void hb_blob_destroy(hb_blob_t *blob);
    hb_face_t *hb_face_create(hb_blob_t *blob, unsigned int index);
    void hb_face_destroy(hb_face_t *face);
    """
)
_HB_MEMORY_MODE_DUPLICATE = 0  # HarfBuzz keeps its own copy of the bytes


def _load_harfbuzz() -> Any:
    for name in ("libharfbuzz.so.0", "harfbuzz", "libharfbuzz-0", "libharfbuzz.0.dylib"):
        try:
            return _HB.dlopen(name)
        except OSError:
            continue
    return None


_harfbuzz = _load_harfbuzz()


@dataclass(frozen=True)
class Face:
    """One face cut down to the repertoire (glyph ids kept), as a HarfBuzz face to subset from."""

    glyphs: frozenset[int]
    data: bytes
    hb_face: Any  # hb_face_t * in WeasyPrint's FFI
    owner: Any  # the same face in our FFI, destroyed when garbage-collected


class RepertoireFaces:
    """The repertoire faces of one renderer (one per process)."""

    def __init__(self) -> None:
        self._faces: dict[tuple[Any, ...], Face | None] = {}

    def __len__(self) -> int:
        """How many faces are cut down and in use."""
        return sum(face is not None for face in self._faces.values())

    @contextmanager
    def active(self) -> Iterator[None]:
        """Subset from the repertoire faces in the PDFs written in this block (this thread)."""
        token = _ACTIVE.set(self)
        try:
            yield
        finally:
            _ACTIVE.reset(token)

    def subset(self, font: Any, to_unicode: dict[int, str], hinting: bool, weasyprint_subset: Subset) -> None:
        """In place of WeasyPrint's subsetting: the same subset, made from the small face when it holds
        every glyph used."""
        face = None if font.missing else self._face(font, hinting, weasyprint_subset)
        if face is None or not face.glyphs.issuperset(to_unicode):
            weasyprint_subset(font, to_unicode, hinting)
            return
        full = font.hb_face
        font.hb_face = face.hb_face
        try:
            weasyprint_subset(font, to_unicode, hinting)
        finally:
            font.hb_face = full

    def _face(self, font: Any, hinting: bool, weasyprint_subset: Subset) -> Face | None:
        key = (font.family, font.weight, font.style, font.index, len(font.file_content), hinting)
        if key not in self._faces:
            self._faces[key] = _make_face(font, hinting, weasyprint_subset)
        return self._faces[key]


def _make_face(font: Any, hinting: bool, weasyprint_subset: Subset) -> Face | None:
    if _harfbuzz is None:
        return None
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
    blob = _harfbuzz.hb_blob_create(data, len(data), _HB_MEMORY_MODE_DUPLICATE, _HB.NULL, _HB.NULL)
    owner = _HB.gc(_harfbuzz.hb_face_create(blob, 0), _harfbuzz.hb_face_destroy)
    _harfbuzz.hb_blob_destroy(blob)  # the face holds its own reference
    # The same C pointer in WeasyPrint's FFI, whose functions accept only their own FFI's types.
    hb_face = weasyprint_ffi.cast("hb_face_t *", int(_HB.cast("uintptr_t", owner)))
    return Face(frozenset(glyphs), data, hb_face, owner)


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
    """Route WeasyPrint's font subsetting through the active RepertoireFaces; False if WeasyPrint changed
    or HarfBuzz cannot be loaded."""
    global _installed
    font_class = weasyprint_fonts.Font
    if _installed:
        return True
    original = font_class.subset
    if _harfbuzz is None or list(inspect.signature(original).parameters) != ["self", "to_unicode", "hinting"]:
        return False

    def subset(font: Any, to_unicode: dict[int, str], hinting: bool) -> None:
        faces = _ACTIVE.get()
        if faces is None:
            original(font, to_unicode, hinting)
        else:
            faces.subset(font, to_unicode, hinting, original)

    font_class.subset = subset
    _installed = True
    return True
