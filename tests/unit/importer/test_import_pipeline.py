"""sniff -> parse -> verify -> normalize over the real external credentials in ../shared/fixtures, their
tampered / expired / wrong-recipient / truncated variants, and hostile files."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pikepdf
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ebackpack.domain.attestations.sniff import Kind, sniff
from ebackpack.domain.credentials import dataintegrity
from ebackpack.domain.credentials.baking import bake_png, bake_svg
from ebackpack.domain.credentials.keys import SigningKey
from services.importer.domain import (
    Attestation,
    ImportContext,
    ImportRejected,
    Learner,
    RecipientMatch,
    SourceFormat,
    VerificationStatus,
)
from services.importer.pipeline import import_bytes

EXTERNAL = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "external"
OB3 = EXTERNAL / "ob3-1edtech"
NOW = datetime(2026, 11, 24, tzinfo=UTC)
CONTEXT = ImportContext(learner=Learner(email="learner@example.org"), now=NOW)
ISSUER_UNKNOWN = VerificationStatus.ISSUER_UNKNOWN

# Every 1EdTech vector: (source format, status offline). The keys of the https / did:web methods cannot
# be fetched offline; where the method's fragment is the key itself, the signature is still checked.
OB3_EXPECTED = {
    "simple.json": (SourceFormat.OB3_JSON, ISSUER_UNKNOWN),
    "simple-eddsa-2022.json": (SourceFormat.OB3_JSON, ISSUER_UNKNOWN),
    "simple-did-key-method.json": (SourceFormat.OB3_JSON, ISSUER_UNKNOWN),
    "complete.json": (SourceFormat.OB3_JSON, ISSUER_UNKNOWN),
    "endorsement-valid.json": (SourceFormat.OB3_JSON, ISSUER_UNKNOWN),
    "credential-status-revoked.json": (SourceFormat.OB3_JSON, VerificationStatus.NOT_VERIFIABLE),
    "simple.jwt": (SourceFormat.OB3_JWT, VerificationStatus.NOT_VERIFIABLE),
    "simple-json.png": (SourceFormat.OB3_PNG, ISSUER_UNKNOWN),
    "simple-json.svg": (SourceFormat.OB3_SVG, ISSUER_UNKNOWN),
    "simple-jwt.png": (SourceFormat.OB3_PNG, ISSUER_UNKNOWN),
    "simple-jwt.svg": (SourceFormat.OB3_SVG, ISSUER_UNKNOWN),
}


def test_the_fixture_folder_is_the_shared_one() -> None:
    assert (EXTERNAL / "README.md").is_file()
    assert sorted(OB3_EXPECTED) == sorted(p.name for p in OB3.iterdir())


@pytest.mark.parametrize("name", sorted(OB3_EXPECTED))
def test_every_1edtech_vector_imports_with_its_format_and_status(name: str) -> None:
    attestation = import_bytes((OB3 / name).read_bytes(), CONTEXT)

    source, status = OB3_EXPECTED[name]
    assert (attestation.source_format, attestation.verification.status) == (source, status), (
        attestation.verification
    )
    assert attestation.title and attestation.verification.reason
    if status is ISSUER_UNKNOWN:
        assert "not on our list of trusted issuers" in attestation.verification.reason
    else:
        assert "network fetches are off" in attestation.verification.reason


def test_an_unchecked_revocation_list_is_said_so() -> None:
    attestation = import_bytes((OB3 / "complete.json").read_bytes(), CONTEXT)
    assert "revocation (1EdTechRevocationList)" in attestation.verification.reason


@pytest.mark.parametrize("path", sorted((EXTERNAL / "europass-edc").iterdir()), ids=lambda p: p.name)
def test_every_europass_sample_imports_with_a_checked_seal(path: Path) -> None:
    attestation = import_bytes(path.read_bytes(), CONTEXT)

    assert attestation.source_format is SourceFormat.EUROPASS_EDC
    assert attestation.verification.status is ISSUER_UNKNOWN
    assert attestation.issuer.name and attestation.issued_on is not None


# ------------------------------------------------------------------ variants made by the tests


def test_a_tampered_1edtech_credential_is_invalid() -> None:
    credential = json.loads((OB3 / "simple.json").read_text())
    credential["credentialSubject"]["achievement"]["name"] = "Brain surgery"

    attestation = import_bytes(json.dumps(credential).encode(), CONTEXT)

    assert attestation.verification.status is VerificationStatus.INVALID


def test_a_tampered_jwt_is_invalid() -> None:
    svg = (OB3 / "simple-jwt.svg").read_text()
    token = svg.split('verify="', 1)[1].split('"', 1)[0]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    (claims.get("vc") or claims)["name"] = "Forged"  # VC-JWT 1.1 nests it in `vc`, 2.0 does not
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    attestation = import_bytes(f"{header}.{forged}.{signature}".encode(), CONTEXT)

    assert attestation.verification.status is VerificationStatus.INVALID


def _signed(credential: dict[str, object]) -> tuple[dict[str, object], SigningKey]:
    key = SigningKey("ed25519-1", "Ed25519", ed25519.Ed25519PrivateKey.generate())
    did = f"did:key:{key.public_multibase()}"
    unsigned = credential | {"issuer": {"id": did, "type": ["Profile"], "name": "Test Academy"}}
    return dataintegrity.sign(unsigned, key, f"{did}#{key.public_multibase()}", "2026-01-01T00:00:00Z"), key


def _credential(**changes: object) -> dict[str, object]:
    credential = json.loads((OB3 / "simple-did-key-method.json").read_text())
    credential.pop("proof")
    return credential | changes


def test_an_expired_signed_credential_is_expired() -> None:
    signed, _ = _signed(_credential(validUntil="2026-06-30T00:00:00Z"))

    attestation = import_bytes(json.dumps(signed).encode(), CONTEXT)

    assert attestation.verification.status is VerificationStatus.EXPIRED
    assert "2026-06-30" in attestation.verification.reason


def test_a_did_key_issuer_on_the_trusted_list_is_verified() -> None:
    signed, _ = _signed(_credential())
    issuer = signed["issuer"]["id"]  # type: ignore[index]

    trusted = ImportContext(learner=CONTEXT.learner, now=NOW, trusted_issuers=frozenset({issuer}))

    assert (
        import_bytes(json.dumps(signed).encode(), trusted).verification.status is VerificationStatus.VERIFIED
    )


def test_trusting_an_issuer_name_does_not_trust_a_key_the_credential_brings_itself() -> None:
    credential = json.loads((OB3 / "simple.json").read_text())  # key only in the method's fragment
    trusted = ImportContext(
        learner=CONTEXT.learner, now=NOW, trusted_issuers=frozenset({credential["issuer"]["id"]})
    )

    assert import_bytes(json.dumps(credential).encode(), trusted).verification.status is ISSUER_UNKNOWN


def test_the_recipient_is_compared_with_the_learner() -> None:
    subject = {
        "type": ["AchievementSubject"],
        "identifier": [
            {
                "type": "IdentityObject",
                "identityType": "emailAddress",
                "hashed": False,
                "identityHash": "learner@example.org",
            }
        ],
        "achievement": {
            "id": "urn:uuid:1",
            "type": ["Achievement"],
            "name": "Teamwork",
            "criteria": {"narrative": "x"},
            "description": "x",
        },
    }
    signed, _ = _signed(_credential(credentialSubject=subject))
    data = json.dumps(signed).encode()

    mine = import_bytes(data, CONTEXT)
    someone_elses = import_bytes(data, ImportContext(learner=Learner(email="other@example.org"), now=NOW))

    assert mine.recipient is RecipientMatch.MATCH
    assert someone_elses.recipient is RecipientMatch.MISMATCH
    assert someone_elses.verification.status is ISSUER_UNKNOWN  # genuine, just not theirs


@pytest.mark.parametrize(
    "name",
    [
        "simple.json",
        "simple.jwt",
        "simple-json.png",
        "simple-jwt.svg",
        "../europass-edc/edc-mc-signed.jsonld",
    ],
)
def test_truncated_files_are_rejected_with_a_reason(name: str) -> None:
    data = (OB3 / name).read_bytes()
    with pytest.raises(ImportRejected) as caught:
        import_bytes(data[: len(data) // 2], CONTEXT)
    assert str(caught.value)


# --------------------------------------------------------------------------------- hostile files


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_a_decompression_bomb_png_is_refused_before_decoding() -> None:
    side = 30_000
    rows = zlib.compress(b"\x00" * (side + 1) * 64, 9)  # a few rows; the header claims 30000 x 30000
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )

    with pytest.raises(ImportRejected, match="too large"):
        import_bytes(bomb, CONTEXT)


def test_a_compressed_text_bomb_inside_a_png_is_refused() -> None:
    image = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(image, "PNG")
    bomb_text = zlib.compress(b"{" + b" " * (64 * 1024 * 1024), 9)  # 64 MiB of JSON whitespace, ~64 KB
    itxt = b"openbadgecredential\x00\x01\x00\x00\x00" + bomb_text
    png = image.getvalue()
    baked = png[:33] + _png_chunk(b"iTXt", itxt) + png[33:]

    with pytest.raises(ImportRejected, match="inflates beyond"):
        import_bytes(baked, CONTEXT)


def test_a_pdf_with_an_oversized_stream_is_refused() -> None:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.Root.Bomb = pdf.make_stream(zlib.compress(b"\x00" * (200 * 1024 * 1024), 9))
    pdf.Root.Bomb.Filter = pikepdf.Name.FlateDecode
    out = io.BytesIO()
    pdf.save(out, compress_streams=False, stream_decode_level=pikepdf.StreamDecodeLevel.none)

    with pytest.raises(ImportRejected):
        import_bytes(out.getvalue(), CONTEXT)


XXE_SVG = """<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:openbadges="https://purl.imsglobal.org/ob/v3p0">
<openbadges:credential><![CDATA[&secret;]]></openbadges:credential><text>&secret;</text></svg>"""

LAUGHS_SVG = """<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>
<svg xmlns="http://www.w3.org/2000/svg"><text>&f;&f;&f;&f;&f;&f;&f;&f;</text></svg>"""


@pytest.mark.parametrize("svg", [XXE_SVG, LAUGHS_SVG], ids=["external-entity", "billion-laughs"])
def test_svgs_with_entities_are_refused(svg: str) -> None:
    with pytest.raises(ImportRejected, match="refused"):
        import_bytes(svg.encode(), CONTEXT)


def test_a_polyglot_file_is_refused() -> None:
    image = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(image, "PNG")
    polyglot = (
        image.getvalue()[:33]
        + _png_chunk(b"tEXt", b"comment\x00%PDF-1.7 <html><script>")
        + image.getvalue()[33:]
    )

    with pytest.raises(ImportRejected, match="polyglot"):
        import_bytes(polyglot, CONTEXT)


def test_the_next_upload_still_works_after_hostile_ones() -> None:
    for hostile in (XXE_SVG.encode(), LAUGHS_SVG.encode(), b"\x89PNG\r\n\x1a\n garbage", b"%PDF-1.7 broken"):
        with pytest.raises(ImportRejected):
            import_bytes(hostile, CONTEXT)
    assert import_bytes((OB3 / "simple.json").read_bytes(), CONTEXT).verification.status is ISSUER_UNKNOWN


def test_a_photo_without_a_code_is_stored_as_not_verifiable() -> None:
    photo = io.BytesIO()
    Image.new("RGB", (640, 480), "lightgray").save(photo, "JPEG")

    attestation = import_bytes(photo.getvalue(), CONTEXT)

    assert attestation.source_format is SourceFormat.IMAGE
    assert attestation.verification.status is VerificationStatus.NOT_VERIFIABLE


def test_the_type_comes_from_the_bytes_not_the_name() -> None:
    assert sniff((OB3 / "simple-json.png").read_bytes()).kind is Kind.PNG
    assert sniff(b'  {"a": 1}').kind is Kind.JSON
    with pytest.raises(ImportRejected, match="unsupported"):
        sniff(b"MZ\x90\x00 an executable")


def test_a_baked_png_of_unknown_json_is_rejected_clearly() -> None:
    image = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(image, "PNG")
    baked = bake_png(image.getvalue(), "openbadgecredential", '{"hello": "world"}')
    with pytest.raises(ImportRejected, match="neither an Open Badges 2.0 assertion nor"):
        import_bytes(baked, CONTEXT)


def test_an_svg_without_badge_data_is_rejected_clearly() -> None:
    plain = bake_svg('<svg xmlns="http://www.w3.org/2000/svg"/>', ob3=True, payload="{}").replace(
        "openbadges:credential", "desc"
    )
    with pytest.raises(ImportRejected, match="without Open Badges data"):
        import_bytes(plain.encode(), CONTEXT)


# ------------------------------------------------------------------------------------------ fuzz

SEEDS = [(OB3 / name).read_bytes() for name in ("simple.json", "simple.jwt", "simple-json.svg")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    cut=st.integers(0, 4000),
    noise=st.binary(max_size=64),
    at=st.integers(0, 4000),
)
def test_mangled_credentials_give_a_record_or_a_clear_rejection(
    seed: bytes, cut: int, noise: bytes, at: int
) -> None:
    data = seed[:at] + noise + seed[at + len(noise) :][: max(cut, 1) * 8]
    try:
        result = import_bytes(data, CONTEXT)
    except ImportRejected as exc:
        assert str(exc)
    else:
        assert isinstance(result, Attestation)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_give_a_record_or_a_clear_rejection(data: bytes) -> None:
    try:
        assert isinstance(import_bytes(data, CONTEXT), Attestation)
    except ImportRejected as exc:
        assert str(exc)


BOMBS_IN_A_CHILD = """
import resource, sys, zlib, struct, io
from services.importer.pipeline import import_bytes
from services.importer.domain import ImportContext, ImportRejected, Learner
import pikepdf
ctx = ImportContext(learner=Learner(email="learner@example.org"))
import_bytes(open(sys.argv[1], "rb").read(), ctx)  # warm up: imports, caches
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
reasons = []
for path in sys.argv[2:]:
    try:
        import_bytes(open(path, "rb").read(), ctx)
        reasons.append("imported")
    except ImportRejected as exc:
        reasons.append(str(exc))
print(chr(10).join(reasons))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_memory_stays_bounded_while_bombs_are_refused(tmp_path: Path) -> None:
    """In a fresh process: the high-water mark of memory barely moves while every bomb is refused."""
    import subprocess
    import sys

    side = 30_000
    png_bomb = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * (side + 1) * 64, 9))
        + _png_chunk(b"IEND", b"")
    )
    image = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(image, "PNG")
    text_bomb = (
        image.getvalue()[:33]
        + _png_chunk(
            b"iTXt",
            b"openbadgecredential\x00\x01\x00\x00\x00" + zlib.compress(b" " * (256 * 1024 * 1024), 9),
        )
        + image.getvalue()[33:]
    )
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.Root.Bomb = pdf.make_stream(zlib.compress(b"\x00" * (512 * 1024 * 1024), 9))
    pdf.Root.Bomb.Filter = pikepdf.Name.FlateDecode
    pdf_bomb = io.BytesIO()
    pdf.save(pdf_bomb, compress_streams=False, stream_decode_level=pikepdf.StreamDecodeLevel.none)
    paths = []
    for name, data in (
        ("warm.json", (OB3 / "simple.json").read_bytes()),
        ("bomb.png", png_bomb),
        ("text.png", text_bomb),
        ("bomb.pdf", pdf_bomb.getvalue()),
        ("laughs.svg", LAUGHS_SVG.encode()),
    ):
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))

    child = subprocess.run(
        [sys.executable, "-c", BOMBS_IN_A_CHILD, *paths],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[3],
    )

    assert child.returncode == 0, child.stderr
    *reasons, grown = child.stdout.strip().splitlines()
    assert "too large" in reasons[0] and "inflates beyond" in reasons[1], reasons
    assert "PDF" in reasons[2] and "refused" in reasons[3], reasons
    grown_kib = int(grown)
    assert grown_kib < 64 * 1024, f"memory grew by {grown_kib} KiB"  # the bombs expand to 3.5 GiB
