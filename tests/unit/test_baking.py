"""Baking Open Badges data into PNG/SVG, reading it back, and the default badge images.

Independent readers where they are cheap: Pillow parses our PNG text chunks and pixels, ElementTree
parses our SVGs, and the 1EdTech baked examples (shared/fixtures/external/ob3-1edtech) must unbake
to the credential they carry. The official openbadges-bakery reading of our OB 2.0 images runs in
the OB 2.0 verifier venv (tests/verifiers/ob2_validator.py: bakery_unbake).
"""

from __future__ import annotations

import base64
import io
import json
import struct
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from ebackpack.domain.credentials.baking import (
    OB2_PNG_KEYWORD,
    OB2_SVG_NAMESPACE,
    OB3_PNG_KEYWORD,
    OB3_SVG_NAMESPACE,
    PNG_SIGNATURE,
    badge_png,
    badge_svg,
    bake_png,
    bake_svg,
    unbake_png,
    unbake_svg,
)

OB3_FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "external" / "ob3-1edtech"
SVG = "{http://www.w3.org/2000/svg}"
TITLE = "Pierwsza pomoc przedmedyczna"
ISSUER = "Stowarzyszenie Edukacji Dorosłych"
ASSERTION = {
    "@context": "https://w3id.org/openbadges/v2",
    "type": "Assertion",
    "id": "https://badges.example.org/a/1",
    "recipient": {"type": "email", "hashed": True, "salt": "s", "identity": "sha256$" + "0" * 64},
    "badge": "https://badges.example.org/b/1",
    "verification": {"type": "hosted"},
    "issuedOn": "2024-05-01T10:00:00Z",
    "narrative": "Zażółć gęślą jaźń",
}
JWT = "eyJhbGciOiJFZERTQSJ9.eyJpZCI6InVybjp1dWlkOjEifQ.c2lnbmF0dXJl"


def fixture(name: str) -> Path:
    path = OB3_FIXTURES / name
    if not path.is_file():
        raise FileNotFoundError(f"1EdTech example {path} is missing (shared/ must sit beside the repo)")
    return path


def png_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """A second, minimal chunk reader (checks the CRCs too) so tests do not trust the code under test."""
    assert png.startswith(PNG_SIGNATURE)
    chunks, offset = [], 8
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind, data = png[offset + 4 : offset + 8], png[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", png[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF, f"bad CRC in {kind!r}"
        chunks.append((kind, data))
        offset += 12 + length
    return chunks


def text_chunks(png: bytes, keyword: str) -> list[tuple[bytes, bytes]]:
    prefix = keyword.encode("latin-1") + b"\x00"
    return [
        (kind, data)
        for kind, data in png_chunks(png)
        if kind in (b"iTXt", b"tEXt", b"zTXt") and data.startswith(prefix)
    ]


def pixels(png: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        return image.mode, image.size, image.tobytes()


def pillow_text(png: bytes) -> dict[str, str]:
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        return {key: str(value) for key, value in image.text.items()}  # type: ignore[attr-defined]


def jwt_payload(token: str) -> dict[str, object]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def ob_children(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [
        el
        for el in root.iter()
        if el.tag in (f"{{{OB2_SVG_NAMESPACE}}}assertion", f"{{{OB3_SVG_NAMESPACE}}}credential")
    ]


@pytest.fixture(scope="module")
def plain_png() -> bytes:
    return badge_png(TITLE, ISSUER, size=200)


# ---------------------------------------------------------------------------------------------- PNG


@pytest.mark.parametrize("keyword", [OB2_PNG_KEYWORD, OB3_PNG_KEYWORD])
@pytest.mark.parametrize("text", [json.dumps(ASSERTION, ensure_ascii=False), JWT, "https://e.org/a/ł"])
def test_png_round_trip_is_one_uncompressed_itxt_before_iend(
    plain_png: bytes, keyword: str, text: str
) -> None:
    baked = bake_png(plain_png, keyword, text)

    assert unbake_png(baked, keyword) == text
    chunks = png_chunks(baked)
    assert chunks[-1][0] == b"IEND" and chunks[-2][0] == b"iTXt"
    header = keyword.encode() + b"\x00\x00\x00\x00\x00"  # keyword, flag 0, method 0, no language/translation
    assert text_chunks(baked, keyword) == [(b"iTXt", header + text.encode())]
    assert pillow_text(baked)[keyword] == text  # an independent PNG reader agrees


def test_png_baking_keeps_pixels_and_every_other_chunk_verbatim() -> None:
    original = fixture("simple-json.png").read_bytes()

    baked = bake_png(original, OB3_PNG_KEYWORD, JWT)

    assert pixels(baked) == pixels(original)
    old, new = text_chunks(original, OB3_PNG_KEYWORD), text_chunks(baked, OB3_PNG_KEYWORD)
    assert [c for c in png_chunks(baked) if c not in new] == [c for c in png_chunks(original) if c not in old]
    assert len(baked) == len(original) - 1401 + 12 + 24 + len(JWT)  # old chunk out, new one in


def test_baking_our_own_badge_png_keeps_its_pixels(plain_png: bytes) -> None:
    baked = bake_png(plain_png, OB2_PNG_KEYWORD, json.dumps(ASSERTION))

    assert pixels(baked) == pixels(plain_png)


def test_png_rebaking_replaces_the_chunk_and_leaves_other_keywords(plain_png: bytes) -> None:
    once = bake_png(plain_png, OB2_PNG_KEYWORD, "first")
    both = bake_png(once, OB3_PNG_KEYWORD, JWT)

    again = bake_png(both, OB2_PNG_KEYWORD, "second")

    assert unbake_png(again, OB2_PNG_KEYWORD) == "second"
    assert len(text_chunks(again, OB2_PNG_KEYWORD)) == 1
    assert unbake_png(again, OB3_PNG_KEYWORD) == JWT


def test_png_legacy_text_chunk_is_read_and_replaced(plain_png: bytes) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text(OB2_PNG_KEYWORD, "https://badges.example.org/legacy/1")  # tEXt, as pre-2013 bakers did
    buffer = io.BytesIO()
    Image.open(io.BytesIO(plain_png)).save(buffer, "PNG", pnginfo=info)
    legacy = buffer.getvalue()
    assert text_chunks(legacy, OB2_PNG_KEYWORD)[0][0] == b"tEXt"

    assert unbake_png(legacy, OB2_PNG_KEYWORD) == "https://badges.example.org/legacy/1"
    baked = bake_png(legacy, OB2_PNG_KEYWORD, "new")
    assert [kind for kind, _ in text_chunks(baked, OB2_PNG_KEYWORD)] == [b"iTXt"]
    assert unbake_png(baked, OB2_PNG_KEYWORD) == "new"


def test_png_compressed_itxt_written_by_pillow_is_read(plain_png: bytes) -> None:
    text = json.dumps(ASSERTION, ensure_ascii=False) * 20
    info = PngImagePlugin.PngInfo()
    info.add_itxt(OB2_PNG_KEYWORD, text, zip=True)
    buffer = io.BytesIO()
    Image.open(io.BytesIO(plain_png)).save(buffer, "PNG", pnginfo=info)
    assert text_chunks(buffer.getvalue(), OB2_PNG_KEYWORD)[0][1][len(OB2_PNG_KEYWORD) + 1] == 1  # compressed

    assert unbake_png(buffer.getvalue(), OB2_PNG_KEYWORD) == text


def test_unbake_png_without_data_is_none(plain_png: bytes) -> None:
    assert unbake_png(plain_png, OB2_PNG_KEYWORD) is None
    assert unbake_png(plain_png, OB3_PNG_KEYWORD) is None


@pytest.mark.parametrize(
    "data", [b"", b"GIF89a\x01\x00\x01\x00", b"<svg xmlns='http://www.w3.org/2000/svg'/>"]
)
def test_non_png_input_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a PNG"):
        bake_png(data, OB2_PNG_KEYWORD, "x")
    with pytest.raises(ValueError, match="not a PNG"):
        unbake_png(data, OB2_PNG_KEYWORD)


def test_truncated_png_is_a_clear_error(plain_png: bytes) -> None:
    with pytest.raises(ValueError, match="truncated PNG"):
        bake_png(plain_png[:-20], OB2_PNG_KEYWORD, "x")


@pytest.mark.parametrize("keyword", ["", "x" * 80, "zażółć", "a\x00b"])
def test_invalid_png_keyword_is_refused(plain_png: bytes, keyword: str) -> None:
    with pytest.raises(ValueError, match="keyword"):
        bake_png(plain_png, keyword, "x")


# ----------------------------------------------------------------------------- 1EdTech OB 3.0 examples


def test_1edtech_json_examples_unbake_to_the_same_credential() -> None:
    from_png = unbake_png(fixture("simple-json.png").read_bytes(), OB3_PNG_KEYWORD)
    from_svg = unbake_svg(fixture("simple-json.svg").read_text(encoding="utf-8"))

    assert from_png is not None and from_svg is not None
    credential = json.loads(from_svg)
    assert json.loads(from_png) == credential
    assert credential["id"] == "http://example.com/credentials/3527"
    assert credential["name"] == "Teamwork Badge"
    assert "OpenBadgeCredential" in credential["type"]


def test_1edtech_jwt_examples_unbake_to_compact_jwts() -> None:
    from_png = unbake_png(fixture("simple-jwt.png").read_bytes(), OB3_PNG_KEYWORD)
    from_svg = unbake_svg(fixture("simple-jwt.svg").read_text(encoding="utf-8"))

    for token in (from_png, from_svg):
        assert token is not None and token.count(".") == 2 and token.startswith("eyJ")
        assert jwt_payload(token)["id"] == "http://example.com/credentials/3527"


def test_1edtech_examples_rebake_and_keep_their_pixels() -> None:
    original = fixture("simple-jwt.png").read_bytes()
    credential = unbake_png(fixture("simple-json.png").read_bytes(), OB3_PNG_KEYWORD)
    assert credential is not None

    baked = bake_png(original, OB3_PNG_KEYWORD, credential)

    assert unbake_png(baked, OB3_PNG_KEYWORD) == credential
    assert len(text_chunks(baked, OB3_PNG_KEYWORD)) == 1
    assert pixels(baked) == pixels(original)


# ---------------------------------------------------------------------------------------------- SVG


def test_ob2_svg_bakes_assertion_json_in_cdata_with_the_hosted_url() -> None:
    payload = json.dumps(ASSERTION, ensure_ascii=False)

    baked = bake_svg(badge_svg(TITLE, ISSUER), ob3=False, payload=payload)

    root = ET.fromstring(baked)
    first = root[0]
    assert first.tag == f"{{{OB2_SVG_NAMESPACE}}}assertion"
    assert first.get("verify") == ASSERTION["id"]
    assert json.loads(first.text or "") == ASSERTION
    assert 'xmlns:openbadges="http://openbadges.org"' in baked
    assert "<![CDATA[" in baked
    assert "<svg" in baked.encode()[:256].decode("utf-8", "ignore")  # openbadges-bakery sniffs this
    assert unbake_svg(baked) == payload


def test_ob2_svg_verify_url_argument_wins_and_is_required_without_an_http_id() -> None:
    assertion = dict(ASSERTION, id="urn:uuid:5b4e0ec0-6cbb-4d2b-9a0a-0e8c4a7c3a11")
    payload = json.dumps(assertion)

    baked = bake_svg(
        badge_svg(TITLE, ISSUER), ob3=False, payload=payload, verify_url="https://badges.example.org/a/1"
    )

    assert ob_children(baked)[0].get("verify") == "https://badges.example.org/a/1"
    with pytest.raises(ValueError, match="hosted URL"):
        bake_svg(badge_svg(TITLE, ISSUER), ob3=False, payload=payload)


def test_ob2_svg_with_a_signature_has_only_the_verify_attribute() -> None:
    baked = bake_svg(badge_svg(TITLE, ISSUER), ob3=False, payload=JWT)

    (element,) = ob_children(baked)
    assert element.get("verify") == JWT and not (element.text or "").strip()
    assert unbake_svg(baked) == JWT


def test_ob3_svg_bakes_credential_json_like_the_1edtech_example() -> None:
    credential = json.loads(unbake_svg(fixture("simple-json.svg").read_text(encoding="utf-8")) or "")

    baked = bake_svg(badge_svg(TITLE, ISSUER), ob3=True, payload=json.dumps(credential))

    first = ET.fromstring(baked)[0]
    assert first.tag == f"{{{OB3_SVG_NAMESPACE}}}credential"
    assert first.get("verify") is None
    assert json.loads(first.text or "") == credential
    assert json.loads(unbake_svg(baked) or "") == credential


def test_ob3_svg_bakes_a_jwt_as_verify_attribute() -> None:
    baked = bake_svg(badge_svg(TITLE, ISSUER), ob3=True, payload=JWT)

    (element,) = ob_children(baked)
    assert element.tag == f"{{{OB3_SVG_NAMESPACE}}}credential" and element.get("verify") == JWT
    assert unbake_svg(baked) == JWT


def test_ob3_json_refuses_a_verify_url() -> None:
    with pytest.raises(ValueError, match="OB 2.0 only"):
        bake_svg(badge_svg(TITLE, ISSUER), ob3=True, payload="{}", verify_url="https://e.org/a/1")


def test_svg_rebaking_replaces_earlier_data_and_keeps_the_drawing() -> None:
    original = fixture("simple-json.svg").read_text(encoding="utf-8")

    ob2 = bake_svg(original, ob3=False, payload=json.dumps(ASSERTION))
    ob3 = bake_svg(ob2, ob3=True, payload=JWT)

    assert [el.get("verify") for el in ob_children(ob3)] == [JWT]
    assert unbake_svg(ob3) == JWT
    assert ob3.count("xmlns:openbadges=") == 1
    assert "<!DOCTYPE svg" in ob3
    paths = [el.get("d") for el in ET.fromstring(original).iter(f"{SVG}path")]
    assert [el.get("d") for el in ET.fromstring(ob3).iter(f"{SVG}path")] == paths


def test_svg_cdata_terminator_inside_json_strings_is_escaped() -> None:
    credential = {"id": "https://e.org/c/1", "description": "a ]]> b <c> & d"}

    baked = bake_svg(badge_svg(TITLE, ISSUER), ob3=True, payload=json.dumps(credential))

    assert json.loads(unbake_svg(baked) or "") == credential


def test_unbake_svg_without_data_is_none() -> None:
    assert unbake_svg(badge_svg(TITLE, ISSUER)) is None


@pytest.mark.parametrize("svg", ["not xml", "<svg", "<html xmlns='http://www.w3.org/1999/xhtml'/>"])
def test_bad_svg_is_a_clear_error(svg: str) -> None:
    with pytest.raises(ValueError, match="SVG"):
        bake_svg(svg, ob3=True, payload=JWT)
    with pytest.raises(ValueError, match="SVG"):
        unbake_svg(svg)


# ------------------------------------------------------------------------------------ default images


def svg_texts(svg: str) -> list[ET.Element]:
    return list(ET.fromstring(svg).iter(f"{SVG}text"))


def test_badge_png_is_deterministic_decodable_and_sized() -> None:
    first = badge_png(TITLE, ISSUER)

    assert first == badge_png(TITLE, ISSUER)
    assert first != badge_png(TITLE, "Inny wystawca")
    mode, size, _ = pixels(first)
    assert (mode, size) == ("RGBA", (400, 400))
    assert pixels(badge_png(TITLE, ISSUER, size=128))[1] == (128, 128)
    with Image.open(io.BytesIO(first)) as image:
        alpha = image.getchannel("A").tobytes()
    assert alpha[0] == 0  # transparent corner
    assert alpha[172 * 400 + 200] == 255  # the medal


@pytest.mark.parametrize(
    "title",
    [
        "Excel",
        TITLE,
        "Zaawansowane techniki programowania współbieżnego w językach funkcyjnych oraz obiektowych "
        "z elementami sztucznej inteligencji i uczenia maszynowego",
        "Konstantynopolitańczykowianeczkaaaaaaaaaaaaaaaaaaaa",
        "",
    ],
)
def test_badge_titles_wrap_into_at_most_three_lines_that_fit_the_disc(title: str) -> None:
    texts = svg_texts(badge_svg(title, ISSUER))

    title_lines = [t for t in texts if t.get("fill") != "#FFFFFF"]
    assert 1 <= len(title_lines) <= 3
    assert all(float(t.get("textLength", "0")) <= 212 for t in title_lines)
    assert badge_png(title, ISSUER, size=120)  # renders without error


def test_badge_keeps_polish_diacritics_and_escapes_markup() -> None:
    svg = badge_svg("Bezpieczeństwo <BHP> & ergonomia", ISSUER)

    root = ET.fromstring(svg)
    assert root.get("role") == "img"
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == f"Bezpieczeństwo <BHP> & ergonomia — {ISSUER}"
    assert root.get("aria-labelledby", "").startswith(title.get("id", "?"))
    words = " ".join(t.text or "" for t in svg_texts(svg))
    assert "Bezpieczeństwo" in words and "Dorosłych" in words
    assert svg == badge_svg("Bezpieczeństwo <BHP> & ergonomia", ISSUER)


def test_long_subtitle_is_shortened_to_one_line() -> None:
    subtitle = "Fundacja Rozwoju Kompetencji Cyfrowych i Społecznych im. Józefa Piłsudskiego w Łodzi"

    lines = [t for t in svg_texts(badge_svg(TITLE, subtitle)) if t.get("fill") == "#FFFFFF"]

    assert len(lines) == 1 and (lines[0].text or "").endswith("…")
    assert float(lines[0].get("textLength", "0")) <= 250


def test_default_images_bake_and_unbake() -> None:
    payload = json.dumps(ASSERTION)

    baked_png = bake_png(badge_png(TITLE, ISSUER), OB2_PNG_KEYWORD, payload)
    assert unbake_png(baked_png, OB2_PNG_KEYWORD) == payload
    assert unbake_svg(bake_svg(badge_svg(TITLE, ISSUER), ob3=False, payload=payload)) == payload
