"""The OpenID4VCI key proof, nonces and offers (ebackpack/domain/credentials/openid4vci.py): what a
wallet's proof must be for its credential to be bound to its key, and each way it is refused."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import base58
import pytest
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey

from ebackpack.domain.credentials import openid4vci
from ebackpack.domain.credentials.openid4vci import Nonces, Openid4vciError, holder_of_proof

ISSUER = "https://backpack.example.org"
NOW = 1_800_000_000.0


def did_key(key: OKPKey) -> str:
    raw = base64.urlsafe_b64decode(key.as_dict(private=False)["x"] + "==")
    return "did:key:z" + base58.b58encode(b"\xed\x01" + raw).decode()


def proof(
    key: OKPKey | ECKey,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    nonce: str | None = None,
) -> str:
    if header is None:
        assert isinstance(key, OKPKey)
        did = did_key(key)
        header = {"alg": "EdDSA", "typ": openid4vci.PROOF_TYP, "kid": f"{did}#{did.removeprefix('did:key:')}"}
    body = {"aud": ISSUER, "iat": int(NOW), "nonce": nonce or NONCES.issue(NOW), **(claims or {})}
    return jws.serialize_compact(header, json.dumps(body), key, algorithms=[header["alg"]])


NONCES = Nonces(b"installation secret")


def holder(token: object) -> str:
    return holder_of_proof(token, ISSUER, lambda value: NONCES.fresh(value, NOW), NOW)


def refused(token: object) -> tuple[str, str]:
    with pytest.raises(Openid4vciError) as caught:
        holder(token)
    return caught.value.error, caught.value.description


def test_a_did_key_proof_binds_the_credential_to_that_did() -> None:
    key = OKPKey.generate_key("Ed25519")
    assert holder(proof(key)) == did_key(key)


def test_a_jwk_proof_binds_to_its_did_jwk() -> None:
    key = ECKey.generate_key("P-256")
    header = {"alg": "ES256", "typ": openid4vci.PROOF_TYP, "jwk": key.as_dict(private=False)}
    did = holder(proof(key, header))
    assert did.startswith("did:jwk:")
    named = json.loads(base64.urlsafe_b64decode(did.removeprefix("did:jwk:") + "=="))
    assert named == {k: key.as_dict(private=False)[k] for k in ("crv", "kty", "x", "y")}


def test_a_proof_signed_by_another_key_than_it_names_is_refused() -> None:
    named, signer = OKPKey.generate_key("Ed25519"), OKPKey.generate_key("Ed25519")
    did = did_key(named)
    header = {"alg": "EdDSA", "typ": openid4vci.PROOF_TYP, "kid": f"{did}#{did.removeprefix('did:key:')}"}
    assert refused(proof(signer, header)) == ("invalid_proof", "the proof's signature does not match its key")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"typ": "JWT"}, "typ"),
        ({"alg": "HS256"}, "alg"),
        ({"kid": "https://wallet.example/key"}, "did:key"),
    ],
)
def test_a_proof_with_a_wrong_header_is_refused(change: dict[str, str], reason: str) -> None:
    key = OKPKey.generate_key("Ed25519")
    did = did_key(key)
    header = {"alg": "EdDSA", "typ": openid4vci.PROOF_TYP, "kid": f"{did}#{did.removeprefix('did:key:')}"}
    token = proof(key, header)
    forged_header = base64.urlsafe_b64encode(json.dumps({**header, **change}).encode()).rstrip(b"=").decode()
    error, description = refused(".".join([forged_header, *token.split(".")[1:]]))
    assert error == "invalid_proof" and reason in description


def test_a_jwk_with_its_private_part_is_refused() -> None:
    key = ECKey.generate_key("P-256")
    header = {"alg": "ES256", "typ": openid4vci.PROOF_TYP, "jwk": key.as_dict(private=True)}
    assert refused(proof(key, header))[1] == "the proof's jwk holds a private key"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "https://elsewhere.example"}, "aud"),
        ({"iat": int(NOW) - 3600}, "iat"),
        ({"iat": "yesterday"}, "iat"),
    ],
)
def test_a_proof_for_another_issuer_or_time_is_refused(claims: dict[str, Any], reason: str) -> None:
    error, description = refused(proof(OKPKey.generate_key("Ed25519"), claims=claims))
    assert error == "invalid_proof" and reason in description


def test_a_stale_made_up_or_tampered_nonce_is_invalid_nonce() -> None:
    key = OKPKey.generate_key("Ed25519")
    stale = NONCES.issue(NOW - openid4vci.NONCE_SECONDS - 1)
    other_installation = Nonces(b"another secret").issue(NOW)
    fresh = NONCES.issue(NOW)
    tampered = fresh[:-2] + ("AA" if not fresh.endswith("AA") else "BB")
    for nonce in (stale, other_installation, "made-up", tampered):
        assert refused(proof(key, nonce=nonce))[0] == "invalid_nonce", nonce


@pytest.mark.parametrize("token", [None, 42, "", "a.b", "x" * 9000, "a.b.c"])
def test_what_is_not_a_compact_jwt_is_refused(token: object) -> None:
    assert refused(token)[0] == "invalid_proof"


def test_the_offer_uri_carries_the_offer_by_value() -> None:
    offer = openid4vci.credential_offer(ISSUER, [openid4vci.LDP_VC], "code-123", 6)
    uri = openid4vci.offer_uri(offer)
    assert uri.startswith("openid-credential-offer://?credential_offer=")
    (carried,) = parse_qs(urlsplit(uri).query)["credential_offer"]
    assert json.loads(carried) == offer
    grant = offer["grants"][openid4vci.PRE_AUTHORIZED_GRANT]
    assert grant["pre-authorized_code"] == "code-123" and grant["tx_code"]["length"] == 6


def test_the_metadata_is_version_1_0_for_a_wallet() -> None:
    """`credential_metadata` is what makes a 1.0 client see 1.0; ldp_vc needs its `@context`."""
    display = openid4vci.IssuerDisplay("Issuer", {"en": "Badge", "pl": "Odznaka"}, {"en": "-", "pl": "-"}, [])
    metadata = openid4vci.issuer_metadata(ISSUER, display)
    assert metadata["credential_issuer"] == ISSUER and metadata["nonce_endpoint"].startswith(ISSUER)
    for configuration in metadata["credential_configurations_supported"].values():
        assert configuration["credential_metadata"]["display"]
        assert "did:key" in configuration["cryptographic_binding_methods_supported"]
    ldp = metadata["credential_configurations_supported"][openid4vci.LDP_VC]
    assert ldp["credential_definition"]["@context"][0] == "https://www.w3.org/ns/credentials/v2"
    server = openid4vci.authorization_server_metadata(ISSUER)
    assert openid4vci.PRE_AUTHORIZED_GRANT in server["grant_types_supported"]
    assert server["issuer"] == ISSUER
