"""Verdicts a verifier can rely on, on credentials made here: validity windows (not yet valid = invalid,
with a small clock skew), tokens refused from their header alone (unsigned, `alg` that is no signature
or does not fit the key, unknown `crit`), and every verdict reason in Polish too."""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import json
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey

from ebackpack.domain.attestations.reasons_pl import MATCHED, POLISH
from ebackpack.domain.credentials import dataintegrity
from ebackpack.domain.credentials.keys import SigningKey
from services.importer import domain
from services.importer.domain import CLOCK_SKEW, ImportContext, Learner, VerificationStatus
from services.importer.pipeline import import_bytes

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LEARNER = Learner(email="learner@example.org")
OFFLINE = ImportContext(learner=LEARNER, now=NOW)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _credential(**fields: Any) -> dict[str, Any]:
    return {
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
        ],
        "id": "urn:uuid:5e0c2a52-1111-4c55-9d3a-000000000001",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": "Window Badge",
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "achievement": {
                "id": "urn:uuid:5e0c2a52-1111-4c55-9d3a-000000000002",
                "type": ["Achievement"],
                "name": "Window Badge",
                "description": "Made by the test.",
                "criteria": {"narrative": "Wait."},
            },
        },
        **fields,
    }


def _did_key_signed(**fields: Any) -> tuple[bytes, str]:
    key = SigningKey("ed25519-1", "Ed25519", ed25519.Ed25519PrivateKey.generate())
    did = f"did:key:{key.public_multibase()}"
    credential = _credential(issuer={"id": did, "type": ["Profile"], "name": "Window Academy"}, **fields)
    created = _iso(NOW - timedelta(days=1))
    signed = dataintegrity.sign(credential, key, f"{did}#{key.public_multibase()}", created)
    return json.dumps(signed).encode(), did


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(claims: dict[str, Any], *, header: dict[str, Any] | None = None) -> str:
    """A VC-JWT signed with an Ed25519 key it embeds in its header (checkable offline)."""
    key = OKPKey.generate_key("Ed25519")
    protected = {"alg": "EdDSA", "typ": "JWT", "jwk": key.as_dict(private=False)} | (header or {})
    return jws.serialize_compact(protected, json.dumps(claims), key, algorithms=["EdDSA"])


def _jwt_claims(**fields: Any) -> dict[str, Any]:
    issuer = "https://issuer.example/profile"
    return {
        "iss": issuer,
        "sub": "mailto:learner@example.org",
        "vc": _credential(issuer={"id": issuer, "type": ["Profile"], "name": "JWT Academy"}),
        **fields,
    }


def _status(data: bytes | str, ctx: ImportContext = OFFLINE) -> tuple[VerificationStatus, str, str]:
    verification = import_bytes(data.encode() if isinstance(data, str) else data, ctx).verification
    return verification.status, verification.reason, verification.reason_pl or ""


# ------------------------------------------------------------------------------- validity windows


def test_a_credential_valid_only_from_2099_is_invalid_and_says_from_when() -> None:
    data, did = _did_key_signed(validFrom="2099-01-01T00:00:00Z")
    trusted = ImportContext(learner=LEARNER, now=NOW, trusted_issuers=frozenset({did}))

    status, reason, reason_pl = _status(data)
    trusted_status, _, _ = _status(data, trusted)

    assert status is VerificationStatus.INVALID, reason
    assert "valid only from 2099-01-01 00:00 UTC (validFrom)" in reason
    assert "2099-01-01 00:00 UTC" in reason_pl and "ważne dopiero od" in reason_pl
    assert trusted_status is VerificationStatus.INVALID  # whatever its key's standing


def test_a_vc_1_1_issuance_date_in_the_future_is_not_valid_yet() -> None:
    data, _ = _did_key_signed(issuanceDate="2099-05-01T00:00:00Z")

    status, reason, _ = _status(data)

    assert status is VerificationStatus.INVALID and "2099-05-01" in reason and "issuanceDate" in reason


def test_a_start_within_the_clock_skew_is_accepted_and_beyond_it_is_not() -> None:
    just_inside, _ = _did_key_signed(validFrom=_iso(NOW + CLOCK_SKEW - timedelta(seconds=30)))
    just_outside, _ = _did_key_signed(validFrom=_iso(NOW + CLOCK_SKEW + timedelta(seconds=30)))

    assert _status(just_inside)[0] is VerificationStatus.ISSUER_UNKNOWN
    assert _status(just_outside)[0] is VerificationStatus.INVALID


def test_an_end_within_the_clock_skew_is_not_expired_yet() -> None:
    inside, _ = _did_key_signed(validUntil=_iso(NOW - CLOCK_SKEW + timedelta(seconds=30)))
    outside, _ = _did_key_signed(validUntil=_iso(NOW - CLOCK_SKEW - timedelta(seconds=30)))

    assert _status(inside)[0] is VerificationStatus.ISSUER_UNKNOWN
    assert _status(outside)[0] is VerificationStatus.EXPIRED


def test_a_jwt_whose_nbf_is_in_the_future_is_invalid() -> None:
    start = NOW + timedelta(days=30)
    token = _jwt(_jwt_claims(nbf=int(start.timestamp())))

    status, reason, _ = _status(token)

    assert status is VerificationStatus.INVALID, reason
    assert f"valid only from {start:%Y-%m-%d %H:%M} UTC (nbf)" in reason


def test_a_jwt_whose_exp_has_passed_is_expired_and_a_current_one_is_not() -> None:
    expired = _jwt(_jwt_claims(exp=int((NOW - timedelta(days=2)).timestamp())))
    current = _jwt(
        _jwt_claims(
            nbf=int((NOW - timedelta(days=2)).timestamp()), exp=int((NOW + timedelta(days=2)).timestamp())
        )
    )

    assert _status(expired)[0] is VerificationStatus.EXPIRED
    assert _status(current)[0] is VerificationStatus.ISSUER_UNKNOWN


def _ob2_assertion(assertion_id: str, verification: dict[str, str]) -> dict[str, Any]:
    """An OB 2.0 assertion of issuer.example's badge 1 for LEARNER, with no issue date yet."""
    return {
        "@context": "https://w3id.org/openbadges/v2",
        "type": "Assertion",
        "id": assertion_id,
        "recipient": {"type": "email", "hashed": False, "identity": LEARNER.email},
        "badge": "https://issuer.example/badges/1",
        "verification": verification,
    }


def test_an_ob2_assertion_issued_in_the_future_is_invalid_and_one_past_expires_is_expired() -> None:
    assertion = _ob2_assertion("https://issuer.example/assertions/1", {"type": "hosted"})
    future = assertion | {"issuedOn": "2099-03-01T00:00:00Z"}
    old = assertion | {"issuedOn": "2020-01-01T00:00:00Z", "expires": "2021-01-01T00:00:00Z"}

    future_status, future_reason, _ = _status(json.dumps(future))
    old_status, old_reason, _ = _status(json.dumps(old))

    assert future_status is VerificationStatus.INVALID and "2099-03-01" in future_reason  # even offline
    assert "issuedOn" in future_reason
    assert old_status is VerificationStatus.EXPIRED and "2021-01-01" in old_reason


# ------------------------------------------------------------------------------ refused tokens


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}.{signature}"


def test_unsigned_and_none_signed_tokens_are_invalid() -> None:
    claims = _jwt_claims()
    for token in (
        _unsigned({"alg": "none", "kid": "https://issuer.example/keys/1"}, claims),
        _unsigned({"alg": "None", "typ": "JWT"}, claims, "c2ln"),
        _unsigned({"typ": "JWT", "kid": "https://issuer.example/keys/1"}, claims, "c2ln"),
        _unsigned({"alg": "EdDSA", "kid": "https://issuer.example/keys/1"}, claims),
    ):
        status, reason, reason_pl = _status(token)
        assert status is VerificationStatus.INVALID, (token[:40], reason)
        assert "sign" in reason and reason_pl != reason


def test_a_hs256_token_keyed_with_the_issuers_public_key_is_invalid() -> None:
    """The classic confusion: the verifier uses the public key as an HMAC secret."""
    public = OKPKey.generate_key("Ed25519").as_dict(private=False)
    header = {"alg": "HS256", "jwk": public}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_jwt_claims()).encode())}"
    secret = json.dumps(public).encode()
    token = f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"

    status, reason, _ = _status(token)

    assert status is VerificationStatus.INVALID and "HS256" in reason and "shared-secret" in reason


def test_an_es256_header_on_an_ed25519_key_is_invalid() -> None:
    ed = OKPKey.generate_key("Ed25519")
    ec_key = ECKey.generate_key("P-256")
    # Signed with a P-256 key, but the header hands over an Ed25519 key and claims ES256.
    token = jws.serialize_compact(
        {"alg": "ES256", "jwk": ed.as_dict(private=False)}, json.dumps(_jwt_claims()), ec_key
    )

    status, reason, _ = _status(token)

    assert status is VerificationStatus.INVALID, reason
    assert "ES256" in reason and "OKP Ed25519" in reason and "does not match the key" in reason


def _ed25519_signed(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """Signed by hand: JOSE libraries refuse to make tokens with headers they do not know."""
    private = ed25519.Ed25519PrivateKey.generate()
    public = {"kty": "OKP", "crv": "Ed25519", "x": _b64(private.public_key().public_bytes_raw())}
    signing_input = _unsigned({"alg": "EdDSA", "jwk": public} | header, claims).rstrip(".")
    return f"{signing_input}.{_b64(private.sign(signing_input.encode()))}"


def test_a_token_with_a_critical_header_we_do_not_implement_is_invalid() -> None:
    token = _ed25519_signed(
        {"crit": ["https://example.org/must-understand"], "https://example.org/must-understand": True},
        _jwt_claims(),
    )
    empty = _ed25519_signed({"crit": []}, _jwt_claims())
    plain = _ed25519_signed({}, _jwt_claims())

    status, reason, _ = _status(token)

    assert status is VerificationStatus.INVALID and "must-understand" in reason
    assert _status(empty)[0] is VerificationStatus.INVALID
    assert _status(plain)[0] is VerificationStatus.ISSUER_UNKNOWN  # the same token without `crit`


def test_the_same_token_without_the_problem_is_accepted() -> None:
    """The refusals above are about the header, not about embedded keys or VC-JWT as such."""
    status, reason, _ = _status(_jwt(_jwt_claims()))
    assert status is VerificationStatus.ISSUER_UNKNOWN, reason


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_an_ob2_signed_assertion_with_no_real_signature_is_invalid(alg: str) -> None:
    assertion = _ob2_assertion(
        "urn:uuid:0c9c5f62-2222-4c55-9d3a-000000000001",
        {"type": "signed", "creator": "https://issuer.example/keys/1"},
    ) | {"issuedOn": "2026-02-01T00:00:00Z"}
    token = _unsigned({"alg": alg}, assertion, "" if alg == "none" else "c2ln")

    status, reason, _ = _status(token)

    assert status is VerificationStatus.INVALID, reason


# ------------------------------------------------------------------------------------- in Polish

IMPORTER = Path(__file__).resolve().parents[3] / "services" / "importer"


def _templates() -> list[str]:
    """Every `say("…")` template in the importer; a name must be a string constant of its module."""
    found = []
    for path in sorted(IMPORTER.rglob("*.py")):
        tree = ast.parse(path.read_text())
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "say" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.append(first.value)
                else:
                    assert isinstance(first, ast.Name), f"{path.name}:{node.lineno}: say() needs a literal"
                    found.append(constants[first.id])
    return found


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_every_verdict_reason_has_a_polish_translation_with_the_same_parameters() -> None:
    templates = _templates()

    assert len(templates) > 50  # the scan found the importer's reasons
    missing = [t for t in templates if t not in POLISH]
    assert not missing, missing
    assert all(_fields(t) == _fields(POLISH[t]) for t in templates)
    assert not set(POLISH) - set(MATCHED) - set(templates), "translations nothing uses"
    assert all(_fields(t) == _fields(POLISH[t]) for t in MATCHED)


def test_reasons_written_in_plain_english_get_their_polish_from_the_catalogue() -> None:
    """pipeline.py writes its reasons (photos, PDFs, links, our codes) in English; the record still
    carries them in Polish."""
    import io

    from PIL import Image

    photo = io.BytesIO()
    Image.new("RGB", (64, 48), "lightgray").save(photo, "JPEG")

    scan = import_bytes(photo.getvalue(), OFFLINE).verification
    link = import_bytes(
        b"https://kursy.example.pl/mod/customcert/verify_certificate.php?code=AB12cd34", OFFLINE
    ).verification

    expected = "zdjęcie lub skan nie zawiera podpisu, i nie znaleziono w nim linku weryfikacyjnego"
    assert scan.reason_pl == expected
    assert link.reason_pl is not None and "pobieranie z sieci jest wyłączone" in link.reason_pl
    unknown = domain.Verification(status=VerificationStatus.INVALID, method="x", reason="something new")
    assert unknown.reason_pl is None  # not in the catalogue: the page shows the English


def _attestation_page(record: dict[str, Any], lang: str) -> str:
    """The learner's attestation page, rendered by the backpack's own template in `lang`."""
    from services.backpack.i18n import LANGUAGE_NAMES, LANGUAGES, format_date, translate
    from services.backpack.web import TEMPLATES

    page = {
        "id": "a1",
        "state": "imported",
        "record": record,
        "filename": "badge.json",
        "url": None,
        "media_type": "application/json",
        "size": 1,
        "sha256": "0" * 64,
    }
    return TEMPLATES.env.get_template("attestation.html").render(
        a=page,
        lang=lang,
        t=lambda text, **values: translate(text, lang, **values),
        date=lambda moment: format_date(moment, lang),
        user=None,
        csrf="x",
        messages=[],
        languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        path="/attestations/a1",
        settings=None,
        request=None,
    )


def test_the_attestation_page_shows_the_reason_in_the_visitors_language() -> None:
    data, _ = _did_key_signed(validFrom="2099-01-01T00:00:00Z")
    record = import_bytes(data, OFFLINE).model_dump(mode="json")
    stored_before = {k: v for k, v in record["verification"].items() if k != "reason_pl"}
    old_record = record | {"verification": stored_before}

    polish, english = _attestation_page(record, "pl"), _attestation_page(record, "en")

    assert "jeszcze nieważne: ważne dopiero od 2099-01-01 00:00 UTC (validFrom)" in polish
    assert "not valid yet: it is valid only from 2099-01-01 00:00 UTC" not in polish
    assert "not valid yet: it is valid only from 2099-01-01 00:00 UTC (validFrom)" in english
    assert "not valid yet" in _attestation_page(old_record, "pl")  # records stored before: English


def test_an_ed25519_proof_whose_method_is_a_p256_key_is_invalid() -> None:
    import base58
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    )
    p256 = "z" + base58.b58encode(b"\x80\x24" + point).decode()
    data, did = _did_key_signed()
    credential = json.loads(data)
    credential["proof"][0]["verificationMethod"] = f"did:key:{p256}#{p256}"

    status, reason, _ = _status(json.dumps(credential))

    assert status is VerificationStatus.INVALID, reason
    assert "needs an Ed25519 key, but its verification method is a EC P-256 key" in reason


@pytest.mark.parametrize(
    ("key_document", "issuer", "bound"),
    [
        ("https://issuer.example/keys/1", "https://issuer.example/profile", True),
        ("https://issuer.example:443/keys/1", "https://ISSUER.example/profile", True),
        ("https://keys.issuer.example/1", "https://issuer.example/profile", False),  # another host
        ("https://issuer.example:8443/keys/1", "https://issuer.example/profile", False),  # another port
        ("http://issuer.example/keys/1", "http://issuer.example/profile", False),  # plain http binds nothing
        ("http://127.0.0.1:8080/keys/1", "http://127.0.0.1:8080/issuer", True),  # loopback: tests only
        ("https://issuer.example/keys/1", "did:web:issuer.example", True),
        ("https://issuer.example/.well-known/did.json", "did:web:issuer.example", True),
        ("https://user@issuer.example/keys/1", "https://issuer.example/profile", False),
    ],
)
def test_which_key_documents_are_on_the_issuers_own_origin(
    key_document: str, issuer: str, bound: bool
) -> None:
    from services.importer.formats.keys import same_origin

    assert same_origin(key_document, issuer) is bound
