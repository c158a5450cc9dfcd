"""Imports per second per format: the importer's pure pipeline, one row per kind of upload.

    .venv/bin/python bench/import_benchmark.py [--count N] [--slow-count M] [--formats a,b] [--json]
                                               [--worst-jsonld]

What is timed: `services.importer.pipeline.import_bytes(data, ctx)`, the whole of what the importer worker
does with one upload's bytes (sniff -> parse -> verify -> normalize into an `Attestation`), N times in a
row on the same input, in this process, after one warm-up import that is not counted. Not timed: Kafka,
the database, S3 (the worker's service layer), and making the inputs. `time.perf_counter` around the
loop; the status shown is that of the first counted import (every import of a row must give the same).

Every input is made here, before any timing (nothing is read from ../shared):

ob3-json      an OB 3.0 `OpenBadgeCredential` shaped like ours (our JSON-LD contexts with the inline
              European Learning Model terms, hashed e-mail identity, learning outcomes, ECTS, EQF level,
              a BitstringStatusListEntry), Data Integrity `eddsa-rdfc-2022`, signed with a fresh Ed25519
              key whose `did:key` is the issuer. Verifying it canonicalizes (RDFC-1.0) the proof options
              and the credential with pyld.
ob3-jwt       the same credential (issuer: a P-256 `did:key`) as an ES256 VC-JWT whose `kid` is the
              `did:key:zDn...#zDn...` multikey (0x80 0x24 + compressed point, base58btc): resolved offline.
ob3-png       the ob3-json text baked (`bake_png`, iTXt `openbadgecredential`) into a 400 px medal PNG.
ob3-svg       the ob3-json text baked (`bake_svg`) into the medal as SVG.
ob2-json      an OB 2.0 hosted assertion (badge and issuer embedded); offline its hosted copy cannot be
              fetched, so it is "not verifiable": parsing and normalizing only.
europass-edc  an EDC 3 credential sealed as the EU's issuer does (JWS JSON serialization, RFC 7797
              unencoded payload, `sigT`) with ES256 and a self-made certificate in `x5c`.
pdf           our own certificate, rendered by `CertificateRenderer` with the ob3-json credential attached
              (`credential_json`): pikepdf reads structure, metadata and the attachment, then
              `pdftotext` and `pdftoppm` run as child processes (under `prlimit`) and zbar scans the page
              for its QR code; the attached credential is verified as in ob3-json.
image         a 1600x1200 JPEG photo of a paper certificate (slightly rotated, noisy) with a Moodle
              verification QR code on it, drawn with `qrcode` and Pillow: decoded and scanned with zbar.

Every row uses an offline context (no network, nobody trusted, nothing of ours) except pdf: its context
has `own_key` returning the test Ed25519 key's JWK for the credential's verification method, so the PDF
verifies as one of our own certificates ("verified"), which is what the importer says of ours. That
lookup costs no more than decoding the did:key, so pdf vs ob3-json is the cost of the PDF around it.

`--worst-jsonld` adds a second table: JSON-LD credentials made to be as costly as we could construct
within the upload size cap (canonicalization bombs of the shapes in tests/hostile_jsonld.py, and the
costliest inputs that pass the importer's canonicalization bounds). Each is imported once in a fresh
process under the importer's sandbox memory limit, as the worker does; the table shows its time to
verdict, the process's peak resident memory (and its resident memory before the import), and the verdict.

pdf and image are slow (child processes, decoding and scanning pixels): they run `--slow-count` times
(default 20, at most `--count`). Progress goes to stderr; the table goes to stdout, or to stderr when
`--json` puts one JSON object on stdout. See bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import base58
import qrcode
from common import LOAD_BEFORE, BenchError
from common import say as log
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from qrcode.constants import ERROR_CORRECT_M

from ebackpack.domain.credentials import dataintegrity, vcjwt
from ebackpack.domain.credentials.baking import badge_png, badge_svg, bake_png, bake_svg
from ebackpack.domain.credentials.jsonld import CREDENTIALS_V2, OB3_CONTEXT
from ebackpack.domain.credentials.keys import SigningKey
from ebackpack.domain.credentials.ob3 import EU_TERMS
from schemas.certificates import CertificateRenderRequest
from services.importer.domain import ImportContext, Learner, SourceFormat
from services.importer.pipeline import import_bytes
from services.renderer.certificate import CertificateRenderer

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ISSUED = datetime(2026, 6, 12, 9, 30, tzinfo=UTC)
LEARNER = Learner(email="zofia.wisniewska@example.pl", name="Zofia Wiśniewska")
SALT = "c0ffee5a1t"
SLOW = ("pdf", "image")
FORMATS = ("ob3-json", "ob3-jwt", "ob3-png", "ob3-svg", "ob2-json", "europass-edc", "pdf", "image")
TITLE = "Pierwsza pomoc przedmedyczna"
WORST_MEMORY_MIB = 1024  # EBACKPACK_IMPORT_FILE_MEMORY_MB's default
MOODLE_URL = "https://kursy.example.pl/admin/tool/certificate/index.php?code=4821973650AB"
P256_MULTICODEC = b"\x80\x24"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- the inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One format's upload and the context it is imported with."""

    name: str
    data: bytes
    ctx: ImportContext
    expected_source: SourceFormat


def email_hash(email: str) -> str:
    return "sha256$" + hashlib.sha256((email + SALT).encode()).hexdigest()


def ob3_credential(issuer_did: str) -> dict[str, Any]:
    """An unsigned OB 3.0 credential shaped like our issuer's (see ebackpack/domain/credentials/ob3.py)."""
    return {
        "@context": [CREDENTIALS_V2, OB3_CONTEXT, EU_TERMS],
        "id": "https://ebackpack.example.pl/ob3/credentials/0b6a3f0e-6a4e-5c1d-9a57-3c1e4d2f8a11",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": TITLE,
        "issuer": {
            "id": issuer_did,
            "type": ["Profile"],
            "name": "Stowarzyszenie Edukacji Dorosłych",
            "url": "https://sed.example.pl",
            "email": "biuro@sed.example.pl",
            "address": {"type": ["Address"], "addressCountryCode": "PL"},
        },
        "validFrom": f"{ISSUED:%Y-%m-%dT%H:%M:%SZ}",
        "awardedDate": f"{ISSUED:%Y-%m-%dT%H:%M:%SZ}",
        "credentialSubject": {
            "id": "urn:uuid:5f2d4c1a-8b7e-4f3a-9c6d-2e1b0a9f8e7d",
            "type": ["AchievementSubject"],
            "identifier": [
                {
                    "type": "IdentityObject",
                    "identityType": "emailAddress",
                    "hashed": True,
                    "identityHash": email_hash(LEARNER.email),
                    "salt": SALT,
                },
                {
                    "type": "IdentityObject",
                    "identityType": "name",
                    "hashed": False,
                    "identityHash": "Zofia Wiśniewska",
                },
            ],
            "achievement": {
                "id": "https://ebackpack.example.pl/ob3/achievements/first-aid",
                "type": ["Achievement"],
                "achievementType": "MicroCredential",
                "name": TITLE,
                "description": "Udziela pierwszej pomocy zgodnie z aktualnymi wytycznymi.",
                "criteria": {"narrative": "Zaliczenie testu końcowego i ćwiczeń praktycznych."},
                "image": {"id": "https://ebackpack.example.pl/badges/first-aid.png", "type": "Image"},
                "inLanguage": "pl",
                "learningOutcome": [
                    "Ocenia bezpieczeństwo miejsca zdarzenia i wzywa pomoc.",
                    "Prowadzi resuscytację krążeniowo-oddechową dorosłego z użyciem AED.",
                ],
                "assessmentType": "test online i ćwiczenia praktyczne",
                "modeOfParticipation": "online",
                "qualityAssurance": "Wewnętrzny system zapewniania jakości",
                "creditsAvailable": 2,
                "volumeOfLearning": "PT16H",
                "alignment": [
                    {
                        "type": ["Alignment"],
                        "targetType": "ext:EQFLevel",
                        "targetCode": "4",
                        "targetName": "EQF level 4",
                        "targetUrl": "http://data.europa.eu/snb/eqf/4",
                        "targetFramework": "European Qualifications Framework",
                    }
                ],
            },
            "creditsEarned": 2,
        },
        "credentialStatus": {
            "id": "https://ebackpack.example.pl/status/1#4711",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": "4711",
            "statusListCredential": "https://ebackpack.example.pl/status/1",
        },
    }


def ob3_signed(key: SigningKey) -> tuple[str, str]:
    """(credential JSON with an eddsa-rdfc-2022 proof, its verification method)."""
    did = f"did:key:{key.public_multibase()}"
    method = f"{did}#{key.public_multibase()}"
    signed = dataintegrity.sign(ob3_credential(did), key, method, f"{ISSUED:%Y-%m-%dT%H:%M:%SZ}")
    return json.dumps(signed, ensure_ascii=False, separators=(",", ":")), method


def p256_multikey(key: SigningKey) -> str:
    """`zDn...`: multicodec p256-pub (0x1200 as varint 0x80 0x24) + compressed point, base58btc."""
    point = key.private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    return "z" + base58.b58encode(P256_MULTICODEC + point).decode()


def ob3_jwt(key: SigningKey) -> str:
    multikey = p256_multikey(key)
    did = f"did:key:{multikey}"
    return vcjwt.sign(ob3_credential(did), key, f"{did}#{multikey}", int(ISSUED.timestamp()))


def ob2_assertion() -> bytes:
    return json.dumps(
        {
            "@context": "https://w3id.org/openbadges/v2",
            "type": "Assertion",
            "id": "https://badges.example.org/public/assertions/9f3c2a1b7d",
            "recipient": {
                "type": "email",
                "hashed": True,
                "salt": SALT,
                "identity": email_hash(LEARNER.email),
            },
            "badge": {
                "type": "BadgeClass",
                "id": "https://badges.example.org/public/badges/excel-advanced",
                "name": "Excel – poziom zaawansowany",
                "description": "Tabele przestawne, formuły tablicowe i makra.",
                "image": "https://badges.example.org/public/badges/excel-advanced/image",
                "criteria": {"narrative": "Zaliczenie projektu końcowego."},
                "issuer": {
                    "type": "Issuer",
                    "id": "https://badges.example.org/public/issuers/cku",
                    "name": "Centrum Kształcenia Ustawicznego",
                    "url": "https://cku.example.org",
                    "email": "badges@cku.example.org",
                },
                "alignment": [
                    {
                        "targetName": "Analizuje dane w arkuszu kalkulacyjnym",
                        "targetUrl": "https://cku.example.org/outcomes/1",
                    }
                ],
            },
            "verification": {"type": "hosted"},
            "issuedOn": "2026-04-02T10:00:00Z",
        },
        ensure_ascii=False,
    ).encode()


def edc() -> dict[str, Any]:
    """An EDC 3 shaped credential, as the EU's issuer writes them (language maps, hasClaim)."""
    return {
        "@context": [
            "https://www.w3.org/2018/credentials/v1",
            "http://data.europa.eu/snb/model/context/edc-ap",
        ],
        "type": ["VerifiableCredential", "EuropeanDigitalCredential"],
        "id": "urn:credential:0b1f6a3c",
        "issuer": {
            "id": "urn:epass:org:test-school",
            "type": "Organisation",
            "legalName": {"pl": "Szkoła Testowa", "en": "Test School"},
            "homepage": [{"type": "WebResource", "contentURL": "https://school.example"}],
        },
        "issuanceDate": "2026-06-01T10:00:00Z",
        "credentialSubject": {
            "id": "did:example:zofia",
            "type": "Person",
            "fullName": {"pl": "Zofia Wiśniewska"},
            "contactPoint": [
                {
                    "type": "ContactPoint",
                    "emailAddress": [{"id": f"mailto:{LEARNER.email}", "type": "Mailbox"}],
                }
            ],
            "hasClaim": [
                {
                    "id": "urn:epass:learningAchievement:1",
                    "type": "LearningAchievement",
                    "title": {"pl": "Bazy danych", "en": "Databases"},
                    "description": {"pl": "Kurs baz danych", "en": "A databases course"},
                    "specifiedBy": {
                        "type": "Qualification",
                        "creditPoint": {
                            "type": "CreditPoint",
                            "point": 3,
                            "framework": {"type": "Concept", "prefLabel": {"en": "ECTS"}},
                        },
                    },
                }
            ],
        },
        "evidence": [
            {
                "type": "Evidence",
                "supportingDocument": {"type": "WebResource", "contentURL": "https://school.example/check"},
            }
        ],
        "displayParameter": {"type": "DisplayParameter", "title": {"en": "Microcredential"}},
    }


def seal_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Test Seal"),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, "ID-Test Seal"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test School"),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2025, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2028, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )


def europass_sealed() -> bytes:
    """A JAdES-like ES256 seal in JWS JSON serialization with an unencoded payload (b64=false)."""
    key = ec.generate_private_key(ec.SECP256R1())
    x5c = [base64.b64encode(seal_certificate(key).public_bytes(serialization.Encoding.DER)).decode()]
    header = {
        "alg": "ES256",
        "typ": "jose+json",
        "b64": False,
        "crit": ["b64", "sigT"],
        "sigT": "2026-06-01T10:00:05Z",
        "x5c": x5c,
    }
    protected = b64url(json.dumps(header).encode())
    payload = json.dumps(edc(), ensure_ascii=False)
    r, s = decode_dss_signature(key.sign(f"{protected}.{payload}".encode(), ec.ECDSA(hashes.SHA256())))
    signature = b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return json.dumps(
        {"payload": payload, "signatures": [{"protected": protected, "signature": signature}]},
        ensure_ascii=False,
    ).encode()


def certificate_pdf(credential_json: str) -> bytes:
    request = CertificateRenderRequest(
        credential_id="0b6a3f0e-6a4e-5c1d-9a57-3c1e4d2f8a11",
        verification_code="7KQM-C4XA-P9RT",
        verify_url="https://ebackpack.example.pl/verify/7KQM-C4XA-P9RT",
        learner_name="Zofia Wiśniewska",
        course_name="Pierwsza pomoc przedmedyczna dla dorosłych",
        achievement_name=TITLE,
        achievement_description="Udziela pierwszej pomocy zgodnie z aktualnymi wytycznymi.",
        issued_on=ISSUED,
        awarding_body="Stowarzyszenie Edukacji Dorosłych",
        language="pl",
        learning_outcomes=[
            "Ocenia bezpieczeństwo miejsca zdarzenia i wzywa pomoc.",
            "Prowadzi resuscytację krążeniowo-oddechową dorosłego z użyciem AED.",
        ],
        ects=2,
        hours=16,
        eqf_level=4,
        credential_json=credential_json,
    )
    return CertificateRenderer().render(request)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf", size)
    except OSError:
        return ImageFont.load_default(size)


def photo_jpeg(qr_text: str, size: tuple[int, int] = (1600, 1200), seed: int = 3) -> bytes:
    """A phone photo of a paper certificate on a desk: noise, a slight tilt, soft focus, JPEG q85."""
    rng = random.Random(seed)
    width, height = size
    desk = Image.linear_gradient("L").resize(size).convert("RGB")
    desk = Image.blend(desk, Image.new("RGB", size, (120, 86, 58)), 0.75)
    paper = Image.new("RGB", (1100, 800), (246, 243, 234))
    draw = ImageDraw.Draw(paper)
    draw.rectangle((20, 20, 1079, 779), outline=(150, 120, 60), width=6)
    draw.text((550, 110), "ZAŚWIADCZENIE", font=_font(64), fill=(40, 40, 40), anchor="mm")
    draw.text((550, 200), "Zofia Wiśniewska", font=_font(48), fill=(20, 20, 70), anchor="mm")
    for line in range(8):  # lines of small print, as grey bars
        top = 280 + line * 36
        draw.rectangle((90, top, 90 + rng.randint(500, 680), top + 12), fill=(120, 120, 120))
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=6, border=4)
    qr.add_data(qr_text)
    qr.make(fit=True)
    code = qr.make_image().get_image().convert("RGB")
    paper.paste(code, (1060 - code.width, 760 - code.height))
    tilted = paper.rotate(4, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(0, 0, 0))
    mask = Image.new("L", paper.size, 255).rotate(4, resample=Image.Resampling.BICUBIC, expand=True)
    desk.paste(tilted, ((width - tilted.width) // 2, (height - tilted.height) // 2), mask)
    noise = Image.effect_noise(size, 18).convert("RGB")
    picture = Image.blend(desk, noise, 0.08).filter(ImageFilter.GaussianBlur(0.8))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=85)
    return out.getvalue()


def missing_tools(names: Sequence[str]) -> list[str]:
    """The programs the pdf row runs as child processes (poppler-utils, util-linux), if absent."""
    needed = ("pdftotext", "pdftoppm", "prlimit") if "pdf" in names else ()
    return [tool for tool in needed if shutil.which(tool) is None]


def make_samples(names: Sequence[str]) -> list[Sample]:
    if missing := missing_tools(names):
        raise BenchError(f"{', '.join(missing)} not found (Debian: apt-get install poppler-utils util-linux)")
    log("making the inputs (keys, signatures, badge images, the certificate PDF, the photo)")
    offline = ImportContext(learner=LEARNER, now=NOW)
    ed_key = SigningKey("ed25519-1", "Ed25519", ed25519.Ed25519PrivateKey.generate())
    p256_key = SigningKey("p256-1", "ES256", ec.generate_private_key(ec.SECP256R1()))
    ob3_json, method = ob3_signed(ed_key)
    own_jwk = ed_key.public_jwk()

    def own_key(verification_method: str) -> dict[str, Any] | None:
        return dict(own_jwk) if verification_method == method else None

    ours = ImportContext(
        learner=LEARNER, now=NOW, own_key=own_key, own_public_url="https://ebackpack.example.pl"
    )
    makers: dict[str, Callable[[], tuple[bytes, ImportContext, SourceFormat]]] = {
        "ob3-json": lambda: (ob3_json.encode(), offline, SourceFormat.OB3_JSON),
        "ob3-jwt": lambda: (ob3_jwt(p256_key).encode(), offline, SourceFormat.OB3_JWT),
        "ob3-png": lambda: (
            bake_png(badge_png(TITLE, "SED"), "openbadgecredential", ob3_json),
            offline,
            SourceFormat.OB3_PNG,
        ),
        "ob3-svg": lambda: (
            bake_svg(badge_svg(TITLE, "SED"), ob3=True, payload=ob3_json).encode(),
            offline,
            SourceFormat.OB3_SVG,
        ),
        "ob2-json": lambda: (ob2_assertion(), offline, SourceFormat.OB2_JSON),
        "europass-edc": lambda: (europass_sealed(), offline, SourceFormat.EUROPASS_EDC),
        "pdf": lambda: (certificate_pdf(ob3_json), ours, SourceFormat.PDF),
        "image": lambda: (photo_jpeg(MOODLE_URL), offline, SourceFormat.IMAGE),
    }
    return [Sample(name, *makers[name]()) for name in names]


# --- timing -------------------------------------------------------------------------------------------


@dataclass
class Row:
    format: str
    imports: int
    seconds: float
    status: str
    source_format: str
    input_bytes: int
    fastest_ms: float
    slowest_ms: float
    same_status: bool  # every counted import gave the status of the first
    expected_source: bool  # the pipeline recognised the input as the format it was made as

    @property
    def per_second(self) -> float:
        return self.imports / self.seconds if self.seconds > 0 else 0.0

    @property
    def ms_each(self) -> float:
        return 1000 * self.seconds / self.imports if self.imports else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "seconds": round(self.seconds, 4),
            "per_second": round(self.per_second, 2),
            "ms_each": round(self.ms_each, 3),
            "fastest_ms": round(self.fastest_ms, 3),
            "slowest_ms": round(self.slowest_ms, 3),
        }


def run_format(sample: Sample, count: int) -> Row:
    log(f"{sample.name}: {count} imports of {len(sample.data):,} bytes")
    import_bytes(sample.data, sample.ctx)  # warm-up, not counted
    statuses, sources, each = [], [], []
    started = time.perf_counter()
    for _ in range(count):
        before = time.perf_counter()
        attestation = import_bytes(sample.data, sample.ctx)
        each.append(time.perf_counter() - before)
        statuses.append(attestation.verification.status)
        sources.append(attestation.source_format)
    seconds = time.perf_counter() - started
    return Row(
        sample.name,
        count,
        seconds,
        str(statuses[0]),
        str(sources[0]),
        len(sample.data),
        1000 * min(each),
        1000 * max(each),
        len(set(statuses)) == 1,
        set(sources) == {sample.expected_source},
    )


# --- the worst JSON-LD inputs ----------------------------------------------------------------------------


def worst_jsonld_inputs() -> dict[str, bytes]:
    """Costly JSON-LD credentials within the 10 MiB upload cap: bombs, and inputs just inside the bounds."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests/
    from tests.hostile_jsonld import KNOWS, NOTE, SHAPES, chain, clique, components, poisoned_credential

    def look_alike(count: int, size: int, predicate: str) -> list[dict[str, Any]]:
        nodes: list[dict[str, Any]] = []
        for c in range(count):
            ids = [f"_:c{c}n{i}" for i in range(size)]
            nodes += [{"@id": a, predicate: [{"@id": b} for b in ids if b != a]} for a in ids]
        return nodes

    inside = {
        # accepted: the most canonicalization work that passes the bounds, with 8 KB predicate IRIs
        "60 4-cliques, 8 KB IRIs": look_alike(60, 4, "https://example.org/" + "p" * 8000),
        # the largest document canonicalized: 9.5 MB of text on 8 blank nodes
        "9.5 MB of text": [{"@id": f"_:s{i}", NOTE: "y" * 1_187_500} for i in range(8)],
        # converting to RDF is quadratic in one node's values: refused after conversion (degree)
        "1,200 values x 7 KB, one node": [{"@id": "_:x", NOTE: "v" * 7000 + str(i)} for i in range(1200)],
        # at the step bound
        "12 5-cliques (steps)": components(12, 5),
        "ring of 60 (steps)": chain(60),
        "clique of 8 (steps)": clique(8),
        "4,900-term inline context": [
            {
                "@context": {f"t{i}": f"https://example.org/t/{i}" for i in range(4900)},
                "@id": "_:ctx",
                KNOWS: {"@id": "_:ctx"},
            }
        ],
    }
    shapes = {f"bomb {name}": make() for name, make in SHAPES.items()}
    return {name: poisoned_credential(nodes) for name, nodes in {**inside, **shapes}.items()}


@dataclass
class WorstRow:
    input: str
    input_bytes: int
    seconds: float  # to the verdict, in the import process
    peak_mib: float  # the import process's peak resident memory
    before_mib: float  # its resident memory before the import (Python and the importer's libraries)
    verdict: str


def worst_jsonld(memory_mib: int) -> list[WorstRow]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="ebackpack-worst-") as scratch:
        for name, data in worst_jsonld_inputs().items():
            path = Path(scratch) / "upload.json"
            path.write_bytes(data)
            log(f"worst JSON-LD: {name} ({len(data):,} bytes) in a fresh process")
            done = subprocess.run(
                [sys.executable, "-c", ONE_UPLOAD, str(path), str(memory_mib)],
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
            if done.returncode != 0:
                raise BenchError(f"{name}: the import process failed: {done.stderr.strip()[-500:]}")
            rows.append(WorstRow(name, len(data), **json.loads(done.stdout)))
    return rows


# The child: only what the importer's sandbox process loads, the memory limit, one import; then time,
# memory and verdict as JSON. argv: the upload's path, the memory limit in MiB.
ONE_UPLOAD = """
import json, resource, sys, time
from datetime import UTC, datetime
from services.importer.domain import ImportContext, ImportRejected, Learner
from services.importer.pipeline import import_bytes
from services.importer.service import ImporterService
memory = int(sys.argv[2]) * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started = time.perf_counter()
try:
    attestation = import_bytes(data, ImportContext(learner=Learner(email="a@example.pl")))
    verdict = f"{attestation.verification.status}: {attestation.verification.reason}"
except ImportRejected as exc:
    verdict = f"rejected: {exc}"
except MemoryError:
    verdict = "rejected: over the memory budget"
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": round(seconds, 3), "peak_mib": round(peak, 1), "before_mib": round(before, 1),
                  "verdict": verdict[:160]}))
"""


def worst_table(rows: Sequence[dict[str, Any]], memory_mib: int) -> str:
    lines = [
        "",
        f"worst-case JSON-LD, each once in a fresh process limited to {memory_mib} MiB "
        "(the importer's sandbox):",
        f"{'input':34}{'MB':>6}{'seconds':>9}{'peak MiB':>10}{'before':>8}  verdict",
    ]
    for row in rows:
        lines.append(
            f"{row['input']:34}{row['input_bytes'] / 1e6:>6.2f}{row['seconds']:>9.2f}"
            f"{row['peak_mib']:>10.0f}{row['before_mib']:>8.0f}  {row['verdict'][:70]}"
        )
    slowest = max(rows, key=lambda row: row["seconds"])
    heaviest = max(rows, key=lambda row: row["peak_mib"])
    lines.append(
        f"slowest: {slowest['input']} ({slowest['seconds']:.2f} s); "
        f"most memory: {heaviest['input']} ({heaviest['peak_mib']:.0f} MiB)"
    )
    return "\n".join(lines)


# --- report -------------------------------------------------------------------------------------------


def poppler_version() -> str | None:
    try:
        done = subprocess.run(["pdftoppm", "-v"], capture_output=True, text=True, check=False)
    except OSError:
        return None
    first = (done.stderr or done.stdout).strip().splitlines()
    return first[0].rsplit(" ", 1)[-1] if first else None


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "pyld": version("PyLD"),
        "pikepdf": version("pikepdf"),
        "pillow": version("pillow"),
        "poppler": poppler_version(),
        "load_average_before": round(LOAD_BEFORE, 2),
    }


def ratios(rows: Sequence[Row]) -> dict[str, float | None]:
    """Imports per second of each format relative to ob3-json (x2 = twice as many per second)."""
    base = next((row.per_second for row in rows if row.format == "ob3-json"), 0.0)
    if base <= 0:
        return {}
    return {row.format: round(row.per_second / base, 3) for row in rows}


def table(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"import benchmark: {m['cpus']} CPUs, Python {m['python']}, PyLD {m['pyld']}, "
        f"pikepdf {m['pikepdf']}, Pillow {m['pillow']}, poppler {m['poppler']}",
        f"run took {report['run_seconds']:.0f} s (inputs made in {report['inputs_seconds']:.1f} s); "
        f"load average before it {m['load_average_before']}",
        "",
        f"{'format':14}{'imports':>8}{'seconds':>9}{'imports/s':>11}{'ms each':>9}  status of the first",
    ]
    for row in report["rows"]:
        lines.append(
            f"{row['format']:14}{row['imports']:>8}{row['seconds']:>9.3f}{row['per_second']:>11.1f}"
            f"{row['ms_each']:>9.2f}  {row['status']}"
        )
        flags = "" if row["same_status"] else "; STATUS VARIED"
        flags += "" if row["expected_source"] else f"; read as {row['source_format']}"
        lines.append(
            f"{'':14}{row['input_bytes'] / 1024:,.1f} KB; fastest {row['fastest_ms']:.2f} ms, "
            f"slowest {row['slowest_ms']:.2f} ms{flags}"
        )
    if report["ratios"]:
        lines += ["", "imports per second relative to ob3-json:"]
        lines += [
            f"  {name:14} x{value:.2f}" if value >= 0.1 else f"  {name:14} x{value:.3f}"
            for name, value in report["ratios"].items()
        ]
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------------------


def run(names: Sequence[str], count: int, slow_count: int, worst: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    samples = make_samples(names)
    inputs_seconds = time.monotonic() - started
    rows = [run_format(sample, slow_count if sample.name in SLOW else count) for sample in samples]
    report = {
        "machine": machine(),
        "count": count,
        "slow_count": slow_count,
        "rows": [row.as_json() for row in rows],
        "ratios": ratios(rows),
        "ok": all(row.same_status and row.expected_source for row in rows),
        "inputs_seconds": round(inputs_seconds, 1),
    }
    if worst:
        report["worst_memory_mib"] = WORST_MEMORY_MIB
        report["worst_jsonld"] = [asdict(row) for row in worst_jsonld(WORST_MEMORY_MIB)]
    report["run_seconds"] = round(time.monotonic() - started, 1)
    return report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=50, help="imports per format (default 50)")
    parser.add_argument(
        "--slow-count", type=int, default=20, help="imports for pdf and image (default 20, at most --count)"
    )
    parser.add_argument(
        "--formats",
        default=",".join(FORMATS),
        help=f"comma-separated subset of {','.join(FORMATS)} (default all)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout, the table on stderr")
    parser.add_argument(
        "--worst-jsonld",
        action="store_true",
        help="also the worst-case JSON-LD inputs, each in a fresh limited process",
    )
    args = parser.parse_args(argv)
    if args.count < 1 or args.slow_count < 1:
        parser.error("--count and --slow-count must be at least 1")
    args.slow_count = min(args.slow_count, args.count)
    args.formats = [name.strip() for name in args.formats.split(",") if name.strip()]
    unknown = sorted(set(args.formats) - set(FORMATS))
    if unknown or not args.formats:
        parser.error(f"unknown formats {', '.join(unknown) or '(none given)'}; known: {', '.join(FORMATS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(
            [name for name in FORMATS if name in args.formats], args.count, args.slow_count, args.worst_jsonld
        )
    except BenchError as error:
        log(f"error: {error}")
        return 2
    text = table(report)
    if "worst_jsonld" in report:
        text += "\n" + worst_table(report["worst_jsonld"], report["worst_memory_mib"])
    print(text, file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    if not report["ok"]:
        log("some input was not read as its format, or its imports gave differing statuses")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
