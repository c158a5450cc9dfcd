"""Signing Open Badges 3.0 credentials: status list, keys, Data Integrity, VC-JWT, fast canonicalization.

Everything offline and in memory (keys in tmp folders): no network, no npm. The independent verifiers
run in tests/integration/test_credential_interop.py; here the slow path (pyld on the whole document)
is the reference the fast path must match byte for byte.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import stat
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import base58
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import ECKey
from pydantic import ValidationError

from ebackpack.adapters.keystore import ensure_key_dir, load_key_dir, rotate_key_dir
from ebackpack.config import SAMPLE_DIR
from ebackpack.domain.credentials import dataintegrity, fastcanon, jsonld, ob3, statuslist, vcjwt
from ebackpack.domain.credentials.dataintegrity import ProofError
from ebackpack.domain.credentials.facts import CredentialFacts, iso, learner_subject_id, recipient_hash
from ebackpack.domain.credentials.fastcanon import ShapeCanonizer
from ebackpack.domain.credentials.keys import (
    KeyRing,
    SigningKey,
    SigningKeyError,
    did_document,
    did_web,
    keyring_from_json,
)
from ebackpack.domain.credentials.signer import DATA_INTEGRITY, JWT, CredentialSigner
from ebackpack.domain.credentials.urls import PublicUrls
from ebackpack.domain.credentials.vcjwt import JwtError
from ebackpack.domain.rules import AwardRule, RuleBook, load_rules

RULES = load_rules(SAMPLE_DIR / "rules.toml")
RULE = {rule.id: rule for rule in RULES.rules}
URLS = PublicUrls("http://127.0.0.1:8000")
ISSUED = datetime(2026, 1, 12, 9, 30, tzinfo=UTC)
Jwk = dict[str, str | list[str]]


def new_ring(number: int = 1) -> KeyRing:
    return KeyRing(
        (
            SigningKey(f"ed25519-{number}", "Ed25519", ed25519.Ed25519PrivateKey.generate()),
            SigningKey(f"p256-{number}", "ES256", ec.generate_private_key(ec.SECP256R1())),
        )
    )


RING = new_ring()


def make_facts(rule: AwardRule, name: str = "Anna Nowak", n: int = 0, **changes: Any) -> CredentialFacts:
    """Facts as the issuer derives them: validity from the rule's `valid_for_days`."""
    issued = ISSUED + timedelta(hours=n)
    salt = f"{n:016x}"
    facts = CredentialFacts(
        credential_id=f"0192a3b4-c5d6-4e7f-8a9b-{n:012x}",
        verification_code="ABCD-EFGH-JKMN",
        rule=rule,
        issuer=RULES.issuer,
        learner_subject_id=learner_subject_id("moodle.example.org", 5700 + n, b"code secret"),
        learner_name=name,
        recipient_salt=salt,
        recipient_hash=recipient_hash(f"l{n}@example.org", salt),
        issued_on=issued,
        valid_until=issued + timedelta(days=rule.valid_for_days) if rule.valid_for_days else None,
        status_list=1 + n % 3,
        status_index=(n * 7919) % statuslist.LIST_SIZE,
        urls=URLS,
    )
    return dataclasses.replace(facts, **changes) if changes else facts


PublicKeyFor = Callable[[str], ed25519.Ed25519PublicKey | None]


def ed25519_lookup(ring: KeyRing, urls: PublicUrls = URLS) -> PublicKeyFor:
    def public_key_for(method: str) -> ed25519.Ed25519PublicKey | None:
        for key in ring.keys:
            if urls.verification_method(key.kid) == method and isinstance(
                key.private_key, ed25519.Ed25519PrivateKey
            ):
                return key.private_key.public_key()
        return None

    return public_key_for


def es256_jwk(ring: KeyRing) -> Jwk:
    return dict(ring.current("ES256").public_jwk())


def slow(facts: CredentialFacts) -> str:
    return jsonld.canonize(ob3.build(ob3.shape_of(facts), ob3.slots_of(facts)))


def fast(canonizer: ShapeCanonizer, facts: CredentialFacts) -> str:
    shape = ob3.shape_of(facts)
    return canonizer.canonize(shape.key, lambda values: ob3.build(shape, values), ob3.slots_of(facts))


@dataclasses.dataclass
class Calls:
    slow: int = 0
    fast: int = 0


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Counts which path fastcanon took: whole-document canonicalization or N-Quads substitution."""
    counted = Calls()
    slow_canonize, fast_canonize = fastcanon.canonize, fastcanon.fast_canonize

    def counting_slow(document: dict[str, Any]) -> str:
        counted.slow += 1
        return slow_canonize(document)

    def counting_fast(template: Any, values: Any) -> str:
        counted.fast += 1
        return fast_canonize(template, values)

    monkeypatch.setattr(fastcanon, "canonize", counting_slow)
    monkeypatch.setattr(fastcanon, "fast_canonize", counting_fast)
    return counted


# --- Bitstring Status List ----------------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 7, 8, 131_071])
def test_status_list_round_trip(index: int) -> None:
    encoded = statuslist.encode([index])
    assert encoded.startswith("u")
    bits = statuslist.decode(encoded)
    assert statuslist.is_set(bits, index)
    assert [i for i in range(statuslist.LIST_SIZE) if statuslist.is_set(bits, i)] == [index]


def test_status_list_bit_order_is_most_significant_bit_first() -> None:
    bits = statuslist.decode(statuslist.encode([0, 9, 15]))
    assert bits[0] == 0b1000_0000
    assert bits[1] == 0b0100_0001
    assert not any(bits[2:])
    assert statuslist.is_set(bits, 0) and not statuslist.is_set(bits, 1)
    assert statuslist.is_set(bits, 9) and statuslist.is_set(bits, 15) and not statuslist.is_set(bits, 8)


def test_status_list_is_16_kib_and_encoding_is_deterministic() -> None:
    assert len(statuslist.decode(statuslist.encode([]))) == 16 * 1024 == statuslist.LIST_SIZE // 8
    assert statuslist.encode([5, 3, 100]) == statuslist.encode([100, 5, 3, 3])
    assert statuslist.encode([5]) != statuslist.encode([6])


@pytest.mark.parametrize("index", [-1, 131_072, 10**6])
def test_status_index_outside_the_list_is_refused(index: int) -> None:
    with pytest.raises(ValueError, match="outside the list"):
        statuslist.encode([1, index])


def test_status_list_decode_refuses_a_non_base64url_multibase() -> None:
    with pytest.raises(ValueError, match="must start with 'u'"):
        statuslist.decode("z" + statuslist.encode([])[1:])


def test_status_entry_and_list_credential() -> None:
    entry = statuslist.entry("https://x.org/status/1", 42)
    assert entry == {
        "id": "https://x.org/status/1#42",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "42",
        "statusListCredential": "https://x.org/status/1",
    }
    document = statuslist.list_credential(
        "https://x.org/status/1", "did:web:x.org", "2026-01-01T00:00:00Z", [42]
    )
    subject = document["credentialSubject"]
    assert subject["type"] == "BitstringStatusList" and subject["statusPurpose"] == "revocation"
    assert statuslist.is_set(statuslist.decode(subject["encodedList"]), 42)


# --- Keys ---------------------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_key_dir_creates_one_key_of_each_kind_with_private_permissions(tmp_path: Path) -> None:
    folder = tmp_path / "state" / "keys"
    ring = ensure_key_dir(folder)
    assert sorted(k.kid for k in ring.keys) == ["ed25519-1", "p256-1"]
    assert sorted(p.name for p in folder.iterdir()) == ["ed25519-1.pem", "p256-1.pem"]  # no temp files left
    assert mode(folder) == 0o700
    for path in folder.iterdir():
        assert mode(path) == 0o600, path
    assert ring.current("Ed25519").algorithm == "Ed25519" and ring.current("ES256").algorithm == "ES256"

    again = ensure_key_dir(folder)
    assert again.current("Ed25519").public_multibase() == ring.current("Ed25519").public_multibase()
    assert again.current("ES256").public_jwk() == ring.current("ES256").public_jwk()
    assert len(again.keys) == 2


def test_ensure_key_dir_tightens_a_world_readable_folder(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o755)
    ensure_key_dir(folder)
    assert mode(folder) == 0o700


def test_rotation_adds_key_two_and_keeps_key_one_published(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    first = ensure_key_dir(folder)
    ring = rotate_key_dir(folder)
    assert ring.current("Ed25519").kid == "ed25519-2" and ring.current("ES256").kid == "p256-2"
    assert sorted(k.kid for k in ring.keys) == ["ed25519-1", "ed25519-2", "p256-1", "p256-2"]
    old = ring.find("ed25519-1")
    assert old is not None
    assert old.public_multibase() == first.current("Ed25519").public_multibase()
    for path in folder.glob("*.pem"):
        assert mode(path) == 0o600, path

    did = did_web(URLS.base)
    document = did_document(did, ring)
    ids = [m["id"] for m in document["verificationMethod"]]
    assert sorted(ids) == sorted(f"{did}#{kid}" for kid in ("ed25519-1", "ed25519-2", "p256-1", "p256-2"))
    assert document["assertionMethod"] == ids
    assert all(m["controller"] == did for m in document["verificationMethod"])
    text = json.dumps(document)
    assert '"d"' not in text and "PRIVATE" not in text
    assert [(k.kid, k.public_jwk()) for k in load_key_dir(folder).keys] == [
        (k.kid, k.public_jwk()) for k in ring.keys
    ]
    assert rotate_key_dir(folder).current("Ed25519").kid == "ed25519-3"


def secrets_of(key: SigningKey) -> list[str]:
    """Every form in which the private key could leak into a text."""
    pem = key.private_pem().decode()
    body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    private = key.private_key
    if isinstance(private, ed25519.Ed25519PrivateKey):
        raw = private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
    else:
        raw = private.private_numbers().private_value.to_bytes(32, "big")
    return [
        *body,
        raw.hex(),
        raw.hex().upper(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        base58.b58encode(raw).decode(),
        repr(raw),
        str(int.from_bytes(raw, "big")),
    ]


def test_repr_of_keys_shows_no_private_material() -> None:
    for key in RING.keys:
        for text in (repr(key), str(key), repr(RING), str(RING)):
            assert key.kid in text
            assert "PRIVATE" not in text
            for secret in secrets_of(key):
                assert secret not in text


def pem_of(key: SigningKey) -> str:
    return key.private_pem().decode()


def test_keyring_from_json_loads_kid_to_pem() -> None:
    text = json.dumps({key.kid: pem_of(key) for key in RING.keys})
    ring = keyring_from_json(text)
    assert ring.current("Ed25519").public_multibase() == RING.current("Ed25519").public_multibase()
    assert ring.current("ES256").public_jwk() == RING.current("ES256").public_jwk()


def test_keyring_from_json_rejects_a_key_whose_name_does_not_match_its_type() -> None:
    ed, p256 = RING.current("Ed25519"), RING.current("ES256")
    swapped = json.dumps({"ed25519-1": pem_of(p256), "p256-1": pem_of(ed)})
    with pytest.raises(SigningKeyError, match="does not match its name") as caught:
        keyring_from_json(swapped)
    for secret in secrets_of(ed) + secrets_of(p256):
        assert secret not in str(caught.value)


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"rsa-1": "ed"}, "is not <ed25519|p256>-<number>"),
        ({"ed25519-1": "ed"}, "no ES256 signing key"),
        (
            {"ed25519-1": "ed", "p256-1": "-----BEGIN PRIVATE KEY-----\nnot base64\n"},
            "not an unencrypted PKCS#8 PEM",
        ),
    ],
)
def test_keyring_from_json_rejects_bad_entries(entries: dict[str, str], message: str) -> None:
    pems = {"ed": pem_of(RING.current("Ed25519"))}
    text = json.dumps({kid: pems.get(pem, pem) for kid, pem in entries.items()})
    with pytest.raises(SigningKeyError, match=message):
        keyring_from_json(text)


def test_keyring_from_json_rejects_non_json_without_echoing_the_secret() -> None:
    key = RING.current("Ed25519")
    text = "ed25519-1=" + pem_of(key)  # a PEM pasted as is, not wrapped in JSON
    with pytest.raises(SigningKeyError) as caught:
        keyring_from_json(text)
    message = str(caught.value)
    assert "EBACKPACK_SIGNING_KEYS" in message and "JSON" in message
    for secret in secrets_of(key):
        assert secret not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize("text", ['["ed25519-1"]', '{"ed25519-1": 5}', '"just a string"'])
def test_keyring_from_json_rejects_json_that_is_not_an_object_of_strings(text: str) -> None:
    with pytest.raises(SigningKeyError):
        keyring_from_json(text)


@pytest.mark.parametrize(
    "url, did",
    [
        ("http://127.0.0.1:8000", "did:web:127.0.0.1%3A8000"),
        ("http://127.0.0.1:8000/", "did:web:127.0.0.1%3A8000"),
        ("https://example.org/backpack/", "did:web:example.org:backpack"),
        ("https://example.org/a/b", "did:web:example.org:a:b"),
        ("https://example.org", "did:web:example.org"),
    ],
)
def test_did_web(url: str, did: str) -> None:
    assert did_web(url) == did
    assert PublicUrls(url).did == did


def test_ed25519_public_key_is_a_multikey() -> None:
    key = RING.current("Ed25519")
    multibase = key.public_multibase()
    assert multibase.startswith("z6Mk")
    raw = base58.b58decode(multibase[1:])
    assert raw[:2] == b"\xed\x01" and len(raw) == 34
    assert key.public_jwk()["crv"] == "Ed25519"
    jwk = RING.current("ES256").public_jwk()
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and "d" not in jwk


# --- Data Integrity (eddsa-rdfc-2022) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def signed_credential() -> dict[str, Any]:
    key = RING.current("Ed25519")
    return dataintegrity.sign(
        ob3.credential(make_facts(RULE["pierwsza-pomoc"])),
        key,
        URLS.verification_method(key.kid),
        "2026-01-12T09:30:00Z",
    )


def test_a_signed_credential_verifies(signed_credential: dict[str, Any]) -> None:
    method = dataintegrity.verify(signed_credential, ed25519_lookup(RING))
    assert method == URLS.verification_method("ed25519-1")
    proof = signed_credential["proof"]
    assert isinstance(proof, list) and len(proof) == 1
    assert proof[0]["type"] == "DataIntegrityProof"
    assert proof[0]["cryptosuite"] == "eddsa-rdfc-2022"
    assert proof[0]["proofPurpose"] == "assertionMethod"
    assert proof[0]["created"] == "2026-01-12T09:30:00Z"
    assert proof[0]["proofValue"].startswith("z") and "@context" not in proof[0]


def _set_name(d: dict[str, Any]) -> None:
    d["name"] = "Chirurgia serca"


def _set_achievement_name(d: dict[str, Any]) -> None:
    d["credentialSubject"]["achievement"]["name"] = "Chirurgia serca"


def _set_achievement_hours(d: dict[str, Any]) -> None:
    d["credentialSubject"]["achievement"]["volumeOfLearning"] = "PT160H"


def _set_learning_outcome(d: dict[str, Any]) -> None:
    d["credentialSubject"]["achievement"]["learningOutcome"].reverse()


def _set_valid_from(d: dict[str, Any]) -> None:
    d["validFrom"] = "2025-01-12T09:30:00Z"


def _set_valid_until(d: dict[str, Any]) -> None:
    d["validUntil"] = "2099-01-01T00:00:00Z"


def _set_learner(d: dict[str, Any]) -> None:
    d["credentialSubject"]["identifier"][1]["identityHash"] = "Jan Kowalski"


def _set_status_index(d: dict[str, Any]) -> None:
    d["credentialStatus"]["statusListIndex"] = "1"


def _set_created(d: dict[str, Any]) -> None:
    d["proof"][0]["created"] = "2026-01-13T09:30:00Z"


@pytest.mark.parametrize(
    "tamper",
    [
        _set_name,
        _set_achievement_name,
        _set_achievement_hours,
        _set_learning_outcome,
        _set_valid_from,
        _set_valid_until,
        _set_learner,
        _set_status_index,
        _set_created,
    ],
)
def test_any_change_breaks_the_proof(
    signed_credential: dict[str, Any], tamper: Callable[[dict[str, Any]], None]
) -> None:
    document = json.loads(json.dumps(signed_credential))
    tamper(document)
    with pytest.raises(ProofError, match="does not match"):
        dataintegrity.verify(document, ed25519_lookup(RING))


def test_another_key_does_not_verify(signed_credential: dict[str, Any]) -> None:
    other = new_ring()
    with pytest.raises(ProofError, match="does not match"):
        dataintegrity.verify(signed_credential, ed25519_lookup(other))
    with pytest.raises(ProofError, match="unknown verification method"):
        dataintegrity.verify(signed_credential, lambda method: None)


def test_a_missing_or_foreign_proof_is_refused(signed_credential: dict[str, Any]) -> None:
    unsigned = {k: v for k, v in signed_credential.items() if k != "proof"}
    with pytest.raises(ProofError, match="expected one"):
        dataintegrity.verify(unsigned, ed25519_lookup(RING))
    other_suite = signed_credential | {"proof": [signed_credential["proof"][0] | {"cryptosuite": "x"}]}
    with pytest.raises(ProofError, match="expected one"):
        dataintegrity.verify(other_suite, ed25519_lookup(RING))


def test_eddsa_needs_an_ed25519_key() -> None:
    key = RING.current("ES256")
    with pytest.raises(ProofError, match="needs an Ed25519 key"):
        dataintegrity.sign(
            ob3.credential(make_facts(RULE["python-basics"])), key, "did:web:x#p256-1", "2026-01-12T09:30:00Z"
        )


# --- Fast canonicalization against the slow path ------------------------------------------------------

# Regressions: when the fast path parsed N-Quads text, pyld's unescape (chained str.replace) read `\\n`
# (an escaped backslash before `n`) back as a backslash and a newline, and its str.splitlines ended a
# line at U+2028, U+0085, VT, FF...: wrong signatures or a crash, after the first document was trusted.

BACKSLASH_LETTER = ["C:\\new", "C:\\temp\\robert", "a\\\\nb", "x\\ry", "end\\"]
LINE_SEPARATORS = [
    "Anna\u2028Nowak",
    "Anna\u2029Nowak",
    "Anna\x85Nowak",
    "Anna\x0bNowak",
    "Anna\x0cNowak",
    "Anna\x1cNowak",
    "Anna\x1eNowak",
]


# Learner names that need escaping in N-Quads, or look like N-Quads syntax, or are not ASCII.
TRICKY = [
    'Anna "Ania" Nowak',
    "O'Brien",
    "back\\slash",
    "trailing backslash\\",
    "\\\\double",
    '\\"escaped quote',
    'quote"\\',
    "C:\\Users\\Zofia",
    "line\nbreak",
    "tab\there",
    "carriage\rreturn",
    '\r\n\t"\\',
    "Zażółć gęślą jaźń",
    "ŁUKASZ ŚWIĘTOCHŁOWICKI",
    "Krzyś 🎓🇵🇱",
    "👩🏽‍🎓",
    "]]>",
    "<script>alert(1)</script>",
    "a > b < c",
    "_:b0",
    "_:c14n0",
    '"^^<http://x>',
    '" .\n<urn:x> <urn:y> "z',
    "<urn:evil>",
    "@id",
    "http://example.org/not-an-iri-here",
    "urn:uuid:00000000-0000-0000-0000-000000000000",
    "",
    " ",
    "sha256$abc",
    "x\x00y",
    "del\x7f",
    "日本語の名前",
    "Ærøskøbing",
    "\u200bzero width",
    "a\\ b",
    *BACKSLASH_LETTER,
    *LINE_SEPARATORS,
]


def tricky_facts() -> list[CredentialFacts]:
    rules = [RULE["python-basics"], RULE["pierwsza-pomoc"], RULE["digital-accessibility"]]
    return [
        make_facts(rules[n % 3], f"{TRICKY[n % len(TRICKY)]}{'' if n < len(TRICKY) else f' #{n}'}", n)
        for n in range(50)
    ]


def test_fast_canonicalization_equals_the_slow_path_for_tricky_names(calls: Calls) -> None:
    canonizer = ShapeCanonizer(ob3.SLOTS)
    facts = tricky_facts()
    for item in facts:
        assert fast(canonizer, item) == slow(item), repr(item.learner_name)
    # the fast path really ran: the slow one only once per shape (3 rules), to trust the template
    assert calls.fast == len(facts)
    assert calls.slow == 3
    assert all(template is not None and template.trusted for template in canonizer.templates.values())


def test_signed_credentials_verify_with_the_slow_path_and_as_jwt() -> None:
    signer = CredentialSigner(RING)
    now = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
    for item in tricky_facts():
        signed = {s.format: s for s in signer.sign(item, now)}
        assert set(signed) == {DATA_INTEGRITY, JWT}
        document = json.loads(signed[DATA_INTEGRITY].document)
        assert dataintegrity.verify(document, ed25519_lookup(RING)) == URLS.verification_method("ed25519-1")
        unsigned = {k: v for k, v in document.items() if k != "proof"}
        assert unsigned == ob3.credential(item)
        assert document["credentialSubject"]["identifier"][1]["identityHash"] == item.learner_name
        claims = vcjwt.decode(signed[JWT].document, es256_jwk(RING))
        assert claims["vc"] == unsigned and claims["iat"] == int(now.timestamp())
        assert signed[JWT].verification_method == URLS.verification_method("p256-1")


@pytest.mark.parametrize(
    "subject_id", ["urn:uuid:with space", "urn:x>y", "urn:x<y", 'urn:x"y', "urn:uuid:Zażółć", "urn:x\\y"]
)
def test_an_unsafe_iri_slot_falls_back_to_the_slow_path(calls: Calls, subject_id: str) -> None:
    canonizer = ShapeCanonizer(ob3.SLOTS)
    first = make_facts(RULE["python-basics"], n=1)
    assert fast(canonizer, first) == slow(first)
    before = Calls(calls.slow, calls.fast)
    unsafe = make_facts(RULE["python-basics"], n=2, learner_subject_id=subject_id)
    assert fast(canonizer, unsafe) == slow(unsafe)
    assert calls.fast == before.fast  # no substitution into the template
    assert calls.slow == before.slow + 1
    # the shape keeps its template: the next safe document takes the fast path again
    after = make_facts(RULE["python-basics"], n=3)
    assert fast(canonizer, after) == slow(after)
    assert calls.fast == before.fast + 1


def test_a_shape_whose_template_disagrees_falls_back_for_good(
    calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    canonizer = ShapeCanonizer(ob3.SLOTS)
    facts = make_facts(RULE["python-basics"], n=4)
    shape = ob3.shape_of(facts)
    real = ob3.slots_of(facts)

    def skewed(values: Any) -> dict[str, Any]:  # the template sees another document than the real one
        document = ob3.build(shape, values)
        if values["learner_name"].startswith("urn:ebackpack-slot-"):
            document["name"] = "something else"
        return document

    assert canonizer.canonize(shape.key, skewed, real) == slow(facts)
    assert canonizer.templates[shape.key] is None
    assert "differs" in caplog.text
    assert canonizer.canonize(shape.key, skewed, real) == slow(facts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(max_size=40), n=st.integers(min_value=0, max_value=10**6))
def test_any_learner_name_canonicalizes_as_the_slow_path_does(calls: Calls, name: str, n: int) -> None:
    canonizer = ShapeCanonizer(ob3.SLOTS)
    for rule in (RULE["python-basics"], RULE["pierwsza-pomoc"]):
        facts = make_facts(rule, name, n)
        assert fast(canonizer, facts) == slow(facts), repr(name)


def test_blank_nodes_sharing_a_first_degree_hash_go_through_the_full_algorithm(calls: Calls) -> None:
    """Two blank nodes said alike (the case RDFC-1.0's N-degree hashing is for): the document is
    canonicalized by pyld's whole algorithm, and the result is the slow path's."""
    context = {"@vocab": "http://example.org/vocab#"}

    def build(values: Any) -> dict[str, Any]:
        return {
            "@context": context,
            "@id": "http://example.org/doc",
            "name": values["name"],
            "part": [{"label": "same"}, {"label": "same"}],
        }

    canonizer = ShapeCanonizer(("name",))
    for name in ("first", "second"):
        expected = jsonld.canonize(build({"name": name}))
        assert "_:c14n1" in expected  # two blank nodes
        assert canonizer.canonize("alike", build, {"name": name}) == expected
    template = canonizer.templates["alike"]
    assert template is not None and template.quads.canonize(lambda text, literal: text) is None


@pytest.mark.parametrize("name", BACKSLASH_LETTER + LINE_SEPARATORS)
def test_escapes_and_line_separators_take_the_fast_path_correctly(calls: Calls, name: str) -> None:
    canonizer = ShapeCanonizer(ob3.SLOTS)
    first = make_facts(RULE["python-basics"], n=1)
    assert fast(canonizer, first) == slow(first)
    item = make_facts(RULE["python-basics"], name, n=2)
    assert fast(canonizer, item) == slow(item)
    assert calls.fast == 2


@pytest.mark.parametrize("name", ["C:\\new", "Anna\u2028Nowak"])
def test_a_learner_named_with_escapes_gets_a_valid_proof(name: str) -> None:
    signer = CredentialSigner(RING, [DATA_INTEGRITY])
    signer.sign(make_facts(RULE["python-basics"], n=1))  # the shape's template is trusted from now on
    signed = signer.sign(make_facts(RULE["python-basics"], name, n=2))[0]
    document = json.loads(signed.document)
    assert document["credentialSubject"]["identifier"][1]["identityHash"] == name
    dataintegrity.verify(document, ed25519_lookup(RING))


@pytest.mark.parametrize("subject_id", ["", "abc", "../x", "#frag", "_:b0"])
def test_a_subject_id_that_is_not_an_absolute_iri_gives_the_slow_path_result(subject_id: str) -> None:
    canonizer = ShapeCanonizer(ob3.SLOTS)
    first = make_facts(RULE["python-basics"], n=1)
    assert fast(canonizer, first) == slow(first)
    item = make_facts(RULE["python-basics"], n=2, learner_subject_id=subject_id)
    assert fast(canonizer, item) == slow(item)


# --- VC-JWT -------------------------------------------------------------------------------------------


def epoch(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


@pytest.fixture(scope="module")
def token() -> str:
    key = RING.current("ES256")
    credential = ob3.credential(make_facts(RULE["pierwsza-pomoc"]))
    return vcjwt.sign(credential, key, URLS.verification_method(key.kid), 1_770_000_000)


def test_jwt_claims_match_the_credential(token: str) -> None:
    claims = vcjwt.decode(token, es256_jwk(RING))
    vc = claims["vc"]
    assert vc == ob3.credential(make_facts(RULE["pierwsza-pomoc"]))
    assert claims["iss"] == vc["issuer"]["id"] == URLS.did
    assert claims["jti"] == vc["id"]
    assert claims["sub"] == vc["credentialSubject"]["id"]
    assert claims["nbf"] == epoch(vc["validFrom"]) == int(ISSUED.timestamp())
    assert claims["exp"] == epoch(vc["validUntil"]) == int((ISSUED + timedelta(days=730)).timestamp())
    assert claims["iat"] == 1_770_000_000
    assert "proof" not in vc
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "ES256", "typ": "JWT", "kid": URLS.verification_method("p256-1")}


def test_a_credential_without_valid_until_has_no_exp() -> None:
    facts = make_facts(RULE["python-basics"])
    assert facts.valid_until is None
    claims = vcjwt.claims_for(ob3.credential(facts), 0)
    assert "exp" not in claims
    key = RING.current("ES256")
    token = vcjwt.sign(ob3.credential(facts), key, URLS.verification_method(key.kid), 1_770_000_000)
    assert "exp" not in vcjwt.decode(token, es256_jwk(RING))


def test_jwt_with_another_key_is_refused(token: str) -> None:
    with pytest.raises(JwtError, match="signature"):
        vcjwt.decode(token, es256_jwk(new_ring()))


def b64url_json(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def test_jwt_with_an_altered_payload_is_refused(token: str) -> None:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["vc"]["credentialSubject"]["achievement"]["name"] = "Chirurgia serca"
    with pytest.raises(JwtError):
        vcjwt.decode(".".join([header, b64url_json(claims), signature]), es256_jwk(RING))
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] += 86_400 * 365  # and the claims alone
    with pytest.raises(JwtError):
        vcjwt.decode(".".join([header, b64url_json(claims), signature]), es256_jwk(RING))


def test_jwt_whose_claims_disagree_with_its_credential_is_refused() -> None:
    credential = ob3.credential(make_facts(RULE["pierwsza-pomoc"]))
    key = ECKey.import_key(RING.current("ES256").private_pem().decode())
    for name, value in [
        ("jti", "urn:uuid:other"),
        ("exp", 4_102_444_800),
        ("sub", "urn:uuid:x"),
        ("iss", "did:web:evil.example"),
    ]:
        claims = vcjwt.claims_for(credential, 1) | {name: value}
        forged = jwt.encode({"alg": "ES256"}, claims, key, algorithms=["ES256"])
        with pytest.raises(JwtError, match=f"claim {name}="):
            vcjwt.decode(forged, es256_jwk(RING))


# --- OB 3.0 builder: the EU micro-credential elements -------------------------------------------------


def test_the_credential_carries_every_eu_micro_credential_element() -> None:
    facts = make_facts(RULE["python-basics"], "Anna Nowak")
    credential = ob3.credential(facts)
    micro = RULE["python-basics"].microcredential
    achievement = credential["credentialSubject"]["achievement"]
    assert credential["@context"][:2] == [jsonld.CREDENTIALS_V2, jsonld.OB3_CONTEXT]
    assert credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert credential["issuer"]["address"]["addressCountryCode"] == "PL"
    assert credential["issuer"]["id"] == URLS.did
    assert credential["issuer"]["name"] == RULES.issuer.name
    assert credential["validFrom"] == credential["awardedDate"] == iso(ISSUED) == "2026-01-12T09:30:00Z"
    assert achievement["achievementType"] == "MicroCredential"
    assert achievement["name"] == "Python Basics"
    assert achievement["creditsAvailable"] == 2 and credential["credentialSubject"]["creditsEarned"] == 2
    assert achievement["volumeOfLearning"] == "PT50H"
    [alignment] = achievement["alignment"]
    assert alignment["targetUrl"] == "http://data.europa.eu/snb/eqf/4" and alignment["targetCode"] == "4"
    assert achievement["learningOutcome"] == micro.learning_outcomes and len(micro.learning_outcomes) == 2
    assert achievement["assessmentType"] == micro.assessment
    assert achievement["modeOfParticipation"] == "online"
    assert achievement["qualityAssurance"] == micro.quality_assurance
    assert achievement["inLanguage"] == "en"
    identities = {i["identityType"]: i for i in credential["credentialSubject"]["identifier"]}
    assert identities["emailAddress"]["hashed"] is True
    assert identities["emailAddress"]["identityHash"] == facts.recipient_hash
    assert identities["name"] == {
        "type": "IdentityObject",
        "identityType": "name",
        "hashed": False,
        "identityHash": "Anna Nowak",
    }
    assert credential["credentialStatus"] == statuslist.entry(
        URLS.status_list(facts.status_list), facts.status_index
    )


def test_a_rule_without_ects_or_eqf_level_leaves_them_out() -> None:
    achievement = ob3.credential(make_facts(RULE["pierwsza-pomoc"]))["credentialSubject"]["achievement"]
    assert "creditsAvailable" not in achievement and "alignment" not in achievement
    assert achievement["volumeOfLearning"] == "PT16H"
    assert achievement["modeOfParticipation"] == "blended"


@pytest.mark.parametrize("rule", RULES.rules, ids=lambda rule: rule.id)
def test_valid_until_only_when_the_rule_has_valid_for_days(rule: AwardRule) -> None:
    credential = ob3.credential(make_facts(rule))
    if rule.valid_for_days is None:
        assert "validUntil" not in credential
    else:
        assert credential["validUntil"] == iso(ISSUED + timedelta(days=rule.valid_for_days))


def eu_term_iris() -> list[str]:
    prefix = ob3.EU_TERMS["elm"]
    iris = [str(d["@id"]).replace("elm:", prefix, 1) for d in ob3.EU_TERMS.values() if isinstance(d, dict)]
    assert len(iris) == 5 and all(iri.startswith("http://data.europa.eu/snb/model/elm/") for iri in iris)
    return iris


@pytest.mark.parametrize("rule", RULES.rules, ids=lambda rule: rule.id)
def test_canonicalization_keeps_every_eu_term(rule: AwardRule) -> None:
    """An undefined JSON-LD term is silently dropped: it would then be neither signed nor verifiable."""
    facts = make_facts(rule)
    nquads = slow(facts)
    predicates = {line.split(" ")[1] for line in nquads.splitlines()}
    for iri in eu_term_iris():
        assert f"<{iri}>" in predicates, iri
    micro = rule.microcredential
    for text in [*micro.learning_outcomes, micro.assessment, micro.quality_assurance]:
        assert json.dumps(text, ensure_ascii=False) in nquads
    assert f'"PT{micro.hours:g}H"^^<http://www.w3.org/2001/XMLSchema#duration>' in nquads
    vocab = "https://purl.imsglobal.org/spec/vc/ob/vocab.html#"
    if micro.ects is not None:
        assert f"<{vocab}creditsAvailable>" in predicates
    if micro.eqf_level is not None:
        assert f'"http://data.europa.eu/snb/eqf/{micro.eqf_level}"' in nquads
    assert f'"{RULES.issuer.country}"' in nquads  # the country code
    if rule.valid_for_days:
        assert "<https://www.w3.org/2018/credentials#validUntil>" in predicates


def test_every_json_key_of_the_credential_is_a_defined_term() -> None:
    """Expansion drops keys the contexts do not define: compare the keys before and after."""
    from pyld import jsonld as pyld

    document = ob3.credential(make_facts(RULE["python-basics"]))
    expanded = pyld.expand(document, {"documentLoader": jsonld.offline_loader})

    def count_keys(node: Any) -> int:
        if isinstance(node, list):
            return sum(count_keys(n) for n in node)
        if not isinstance(node, dict):
            return 0
        if "@value" in node or set(node) == {"@id"}:  # a value, or a string that became a node reference
            return 0
        if "@list" in node:
            return count_keys(node["@list"])
        keys = [k for k in node if k not in ("@context",)]
        return len(keys) + sum(count_keys(v) for k, v in node.items() if k != "@context")

    assert count_keys(expanded) == count_keys(document)


# --- Award rules ----------------------------------------------------------------------------------------


def sample_rules() -> dict[str, Any]:
    return tomllib.loads((SAMPLE_DIR / "rules.toml").read_text(encoding="utf-8"))


def rejection(mutate: Callable[[dict[str, Any]], None]) -> str:
    data = sample_rules()
    mutate(data["rules"][0])
    with pytest.raises(ValidationError) as caught:
        RuleBook.model_validate(data)
    return str(caught.value)


def test_the_sample_rules_are_valid() -> None:
    assert RuleBook.model_validate(sample_rules()) == RULES


def test_a_rule_without_microcredential_is_rejected() -> None:
    message = rejection(lambda rule: rule.pop("microcredential"))
    assert "rules.0.microcredential" in message and "Field required" in message


def test_a_rule_without_workload_is_rejected() -> None:
    def no_workload(rule: dict[str, Any]) -> None:
        del rule["microcredential"]["ects"], rule["microcredential"]["hours"]

    message = rejection(no_workload)
    assert "rules.0.microcredential" in message and "set ects and/or hours" in message


def test_eqf_level_9_is_rejected() -> None:
    message = rejection(lambda rule: rule["microcredential"].update(eqf_level=9))
    assert "rules.0.microcredential.eqf_level" in message and "less than or equal to 8" in message


@pytest.mark.parametrize(
    "field, value, problem",
    [
        ("learning_outcomes", [], "learning_outcomes"),
        ("participation", "by post", "participation"),
        ("ects", 0, "ects"),
    ],
)
def test_other_bad_micro_credential_elements_are_rejected(field: str, value: Any, problem: str) -> None:
    message = rejection(lambda rule: rule["microcredential"].update({field: value}))
    assert f"microcredential.{problem}" in message


def test_only_hours_or_only_ects_is_enough() -> None:
    for dropped in ("ects", "hours"):
        data = sample_rules()
        del data["rules"][0]["microcredential"][dropped]
        RuleBook.model_validate(data)
