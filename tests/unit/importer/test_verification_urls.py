"""Verification links of Moodle (mod_customcert, tool_certificate), Open edX (Navoica) and our own."""

from __future__ import annotations

import pytest

from services.importer.verification_urls import RecognizedUrl, UrlKind, recognize

OWN = "https://backpack.example.pl"
NAVOICA = "https://navoica.pl/certificates/0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("url", "kind", "platform", "code"),
    [
        (
            "https://kursy.example.pl/mod/customcert/verify_certificate.php?code=a1B2c3D4e5",
            UrlKind.MOODLE_CUSTOMCERT,
            "Moodle (kursy.example.pl)",
            "a1B2c3D4e5",
        ),
        # The QR code element's link, on a Moodle installed in a subdirectory.
        (
            "https://example.edu/moodle/mod/customcert/verify_certificate.php?contextid=123&code=XyZ9876543&qrcode=1",
            UrlKind.MOODLE_CUSTOMCERT,
            "Moodle (example.edu)",
            "XyZ9876543",
        ),
        (
            "http://Kursy.Example.PL/admin/tool/certificate/index.php?code=0312481ZQ9",
            UrlKind.MOODLE_TOOL_CERTIFICATE,
            "Moodle (kursy.example.pl)",
            "0312481ZQ9",
        ),
        (NAVOICA, UrlKind.OPEN_EDX, "Navoica", "0123456789abcdef0123456789abcdef"),
        (
            "https://www.navoica.pl/certificates/fedcba9876543210fedcba9876543210/",
            UrlKind.OPEN_EDX,
            "Navoica",
            "fedcba9876543210fedcba9876543210",
        ),
        (
            "https://lms.example.org/certificates/fedcba9876543210fedcba9876543210",
            UrlKind.OPEN_EDX,
            "Open edX (lms.example.org)",
            "fedcba9876543210fedcba9876543210",
        ),
        (f"{OWN}/verify/7KQM-C4XA-P9RT", UrlKind.OWN, "e-Backpack", "7KQM-C4XA-P9RT"),
        (f"  {OWN}:443/verify/7KQM-C4XA-P9RT\n", UrlKind.OWN, "e-Backpack", "7KQM-C4XA-P9RT"),
    ],
)
def test_recognizes(url: str, kind: UrlKind, platform: str, code: str) -> None:
    assert recognize(url, OWN) == RecognizedUrl(kind, platform, code, url.strip())


@pytest.mark.parametrize(
    "url",
    [
        "ftp://kursy.example.pl/mod/customcert/verify_certificate.php?code=a1B2c3D4e5",
        "javascript://kursy.example.pl/mod/customcert/verify_certificate.php?code=a1B2c3D4e5",
        "kursy.example.pl/mod/customcert/verify_certificate.php?code=a1B2c3D4e5",
        "https:///mod/customcert/verify_certificate.php?code=a1B2c3D4e5",
        "https://user:pw@kursy.example.pl/mod/customcert/verify_certificate.php?code=a1B2c3D4e5",
        "https://kursy.example.pl:99999/mod/customcert/verify_certificate.php?code=a1B2c3D4e5",
        "https://kursy.example.pl/mod/customcert/verify_certificate.php",
        "https://kursy.example.pl/mod/customcert/verify_certificate.php?code=",
        "https://kursy.example.pl/mod/customcert/verify_certificate.php?code=a1&code=b2",
        "https://kursy.example.pl/mod/customcert/verify_certificate.php?code=<script>",
        "https://kursy.example.pl/mod/customcert/verify_certificate.php?code=a1B2c3D4e5&contextid=x",
        "https://kursy.example.pl/mod/customcert/view.php?id=5",
        "https://kursy.example.pl/admin/tool/certificate/index.php",
        "https://navoica.pl/certificates/0123456789ABCDEF0123456789ABCDEF",
        "https://navoica.pl/certificates/0123456789abcdef",
        "https://navoica.pl/courses/certificates/0123456789abcdef0123456789abcdef",
        "https://navoica.pl/certificates/user/42/course/course-v1:OPI+X1+2024",
        "https://navoica.pl/certificates/0123456789abcdef 0123456789abcdef",
        "https://example.org/",
        "not a url",
        "",
    ],
)
def test_does_not_recognize(url: str) -> None:
    assert recognize(url, OWN) is None


@pytest.mark.parametrize(
    "url",
    [
        f"{OWN}/verify/7KQM-C4XA-P9RT",
        "http://backpack.example.pl/verify/7KQM-C4XA-P9RT",  # not our scheme
        "https://backpack.example.pl.evil.example/verify/7KQM-C4XA-P9RT",
        "https://backpack.example.pl:8443/verify/7KQM-C4XA-P9RT",
    ],
)
def test_own_only_at_our_exact_origin(url: str) -> None:
    assert recognize(url) is None
    if url.startswith(OWN + "/"):
        assert recognize(url, OWN) is not None
    else:
        assert recognize(url, OWN) is None


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://example.pl/ebackpack/verify/7KQM-C4XA-P9RT", "7KQM-C4XA-P9RT"),
        ("https://example.pl/ebackpack/verify/", None),
        ("https://example.pl/ebackpack/verify/7KQM/certificate.pdf", None),
        ("https://example.pl/other/verify/7KQM-C4XA-P9RT", None),
    ],
)
def test_own_under_a_path(url: str, code: str | None) -> None:
    recognized = recognize(url, "https://example.pl/ebackpack/")
    assert (recognized.code if recognized else None) == code


def test_a_customcert_link_is_not_ours_on_our_host() -> None:
    url = f"{OWN}/mod/customcert/verify_certificate.php?code=a1B2c3D4e5"
    recognized = recognize(url, OWN)
    assert recognized is not None and recognized.kind is UrlKind.MOODLE_CUSTOMCERT
