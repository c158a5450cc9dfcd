"""Recognizes the verification links that certificates carry (printed, or in a QR code).

Only the shapes the platforms really produce are recognized, and only over http(s): a link that merely
resembles one (another scheme, credentials in it, a malformed code) is not a verification link.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import SplitResult, parse_qs, urlsplit

MAX_URL_LENGTH = 2048
# Moodle's codes are PARAM_ALPHANUM (some code formats add dashes); ours are `XXXX-XXXX-XXXX`.
_CODE = re.compile(r"[A-Za-z0-9-]{1,64}")
_DIGITS = re.compile(r"[0-9]{1,18}")
# Open edX: `verify_uuid` is uuid4().hex, matched by the LMS route `^(?P<certificate_uuid>[0-9a-f]{32})$`.
_OPEN_EDX_PATH = re.compile(r"/certificates/([0-9a-f]{32})/?")
_OPEN_EDX_NAMES = {"navoica.pl": "Navoica", "courses.edx.org": "edX"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


class UrlKind(StrEnum):
    MOODLE_CUSTOMCERT = "moodle-customcert"  # mod_customcert, verify_certificate.php?code=
    MOODLE_TOOL_CERTIFICATE = "moodle-tool-certificate"  # tool_certificate (Workplace), index.php?code=
    OPEN_EDX = "open-edx"  # Open edX web certificate, /certificates/<uuid>
    OWN = "own"  # our own verification page, <public url>/verify/<code>


@dataclass(frozen=True)
class RecognizedUrl:
    kind: UrlKind
    platform: str  # for humans: "Navoica", "Moodle (kursy.example.pl)", "e-Backpack"
    code: str  # verification code, or the certificate's uuid on Open edX
    url: str


def recognize(url: str, own_public_url: str | None = None) -> RecognizedUrl | None:
    """What kind of verification link `url` is, or None when it is none we know."""
    url = url.strip()
    parts = _split(url)
    if parts is None:
        return None
    own = _split(own_public_url.strip()) if own_public_url else None
    if own is not None and (code := _own_code(parts, own)):
        return RecognizedUrl(UrlKind.OWN, "e-Backpack", code, url)
    host = parts.hostname or ""
    if parts.path.endswith("/mod/customcert/verify_certificate.php") and (code := _query_code(parts)):
        return RecognizedUrl(UrlKind.MOODLE_CUSTOMCERT, f"Moodle ({host})", code, url)
    if parts.path.endswith("/admin/tool/certificate/index.php") and (code := _query_code(parts)):
        return RecognizedUrl(UrlKind.MOODLE_TOOL_CERTIFICATE, f"Moodle ({host})", code, url)
    if match := _OPEN_EDX_PATH.fullmatch(parts.path):
        platform = _OPEN_EDX_NAMES.get(host.removeprefix("www."), f"Open edX ({host})")
        return RecognizedUrl(UrlKind.OPEN_EDX, platform, match[1], url)
    return None


def _split(url: str) -> SplitResult | None:
    """http(s) with a host and no credentials; no spaces or control characters anywhere."""
    if len(url) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return None
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    return parts


def _query_code(parts: SplitResult) -> str | None:
    """Moodle's `code` (exactly one), with optional numeric `contextid` and the QR code's `qrcode=1`."""
    query = parse_qs(parts.query, keep_blank_values=True)
    codes = query.get("code", [])
    if len(codes) != 1 or not _CODE.fullmatch(codes[0]):
        return None
    if not all(_DIGITS.fullmatch(value) for value in query.get("contextid", []) + query.get("qrcode", [])):
        return None
    return codes[0]


def _own_code(parts: SplitResult, own: SplitResult) -> str | None:
    """The code of `<own public url>/verify/<code>`: same scheme, host and port, then exactly that path."""
    if _origin(parts) != _origin(own):
        return None
    prefix = own.path.rstrip("/") + "/verify/"
    code = parts.path.removeprefix(prefix)
    return code if parts.path.startswith(prefix) and _CODE.fullmatch(code) else None


def _origin(parts: SplitResult) -> tuple[str, str, int]:
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS[scheme]
