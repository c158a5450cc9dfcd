"""What an upload really is, from its bytes (never from its name or the browser's content type)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ebackpack.domain.attestations.errors import ImportRejected

SNIFF_WINDOW = 4096  # bytes looked at for text formats and polyglot markers


class Kind(StrEnum):
    PNG = "png"
    JPEG = "jpeg"
    PDF = "pdf"
    SVG = "svg"
    JSON = "json"
    JWS = "jws"  # compact JWS / JWT text
    URL = "url"


MEDIA_TYPES = {
    Kind.PNG: "image/png",
    Kind.JPEG: "image/jpeg",
    Kind.PDF: "application/pdf",
    Kind.SVG: "image/svg+xml",
    Kind.JSON: "application/json",
    Kind.JWS: "application/jwt",
    Kind.URL: "text/uri-list",
}

_MAGIC = ((b"\x89PNG\r\n\x1a\n", Kind.PNG), (b"\xff\xd8\xff", Kind.JPEG), (b"%PDF-", Kind.PDF))
# Signatures of other formats that have no business inside the first bytes of an image or a PDF.
_FOREIGN = {
    b"%PDF-": "PDF",
    b"PK\x03\x04": "ZIP",
    b"<html": "HTML",
    b"<script": "HTML script",
    b"\x7fELF": "executable",
    b"MZ\x90\x00": "executable",
}
_JWS_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")

SUPPORTED = (
    "Open Badges (PNG, SVG, JSON, JWS/JWT), Europass credentials (JSON-LD), PDF certificates, "
    "photos and scans (PNG, JPEG)"
)


@dataclass(frozen=True)
class Sniffed:
    kind: Kind
    media_type: str


def _binary_kind(head: bytes) -> Kind | None:
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def _reject_polyglot(kind: Kind, head: bytes) -> None:
    """A file that is also another format (an image that is a PDF or an HTML page too) is a trap for
    whoever opens it later with another program: refused rather than stored as what it claims."""
    lowered = head[len(b"%PDF-") :].lower() if kind is Kind.PDF else head[3:].lower()
    for marker, name in _FOREIGN.items():
        if marker in lowered and not (kind is Kind.PDF and name == "PDF"):
            raise ImportRejected(
                f"the file is a {kind.value.upper()} that also contains a {name} signature "
                "in its first bytes (a polyglot file): rejected"
            )


def _text_kind(head: bytes) -> Kind:
    try:
        text = head.decode("utf-8", errors="strict" if len(head) < SNIFF_WINDOW else "ignore")
    except UnicodeDecodeError:
        raise ImportRejected(
            f"unsupported file type (neither an image, a PDF nor text); supported: {SUPPORTED}"
        ) from None
    text = text.lstrip("\ufeff \t\r\n")
    if text.startswith("{"):
        return Kind.JSON
    if text.startswith("<") and "<svg" in text.lower():
        return Kind.SVG
    if text.startswith(("https://", "http://")) and len(text.split()) == 1:
        return Kind.URL
    candidate = text.strip()
    if candidate.startswith("eyJ") and set(candidate) <= _JWS_ALPHABET:  # the parser checks the 3 parts
        return Kind.JWS
    raise ImportRejected(
        f"unsupported file type: text that is not JSON, SVG, a JWS/JWT or a URL; supported: {SUPPORTED}"
    )


def sniff(data: bytes) -> Sniffed:
    """The upload's kind; raises ImportRejected (empty, unknown, polyglot) with the reason."""
    if not data:
        raise ImportRejected("the file is empty")
    head = data[:SNIFF_WINDOW]
    kind = _binary_kind(head)
    if kind is not None:
        _reject_polyglot(kind, head)
    else:
        kind = _text_kind(head)
    return Sniffed(kind, MEDIA_TYPES[kind])
