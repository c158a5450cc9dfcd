"""Verdicts that need the issuer's website, against real HTTP servers on 127.0.0.1 (network opt-in with
loopback allowed): OB 2.0 revocation lists, hosted assertions revoked at their source, tokens refused
before anything is fetched, not-yet-valid credentials, and the `verified` level of keys published on the
issuer's own origin (OB 2.0 and OB 3.0), next to the levels that stay "issuer not known"."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

from ebackpack.domain.credentials import dataintegrity
from ebackpack.domain.credentials.keys import SigningKey
from services.importer.domain import ImportContext, VerificationStatus
from services.importer.formats.keys import jwk_thumbprint_uri
from services.importer.pipeline import import_bytes, import_url
from tests.integration.test_importer_network import LEARNER, Site, issue, ob2_assertion, online, served_site

pytestmark = pytest.mark.integration


@pytest.fixture
def site() -> Iterator[Site]:
    yield from served_site()


@pytest.fixture
def elsewhere() -> Iterator[Site]:
    """A second origin (another port): someone who is not the issuer."""
    yield from served_site()


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/revocations"  # nothing listens there once the probe is closed


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ------------------------------------------------------------------------------ OB 2.0 signed


@dataclass
class SignedIssuer:
    site: Site
    key: RSAKey
    creator: str
    issuer: str
    badge: str

    def assertion(self, number: int, **fields: Any) -> dict[str, Any]:
        return (
            ob2_assertion(
                f"urn:uuid:7d1f0c36-0000-4000-8000-{number:012d}",
                self.badge,
                {"type": "SignedBadge", "creator": self.creator},
            )
            | fields
        )

    def sign(self, assertion: dict[str, Any], header: dict[str, Any] | None = None) -> bytes:
        protected = {"alg": "RS256"} | (header or {})
        return jws.serialize_compact(protected, json.dumps(assertion), self.key).encode()


def signed_issuer(site: Site, *, revocation_list: str | None = None, list_key: bool = True) -> SignedIssuer:
    """An OB 2.0 issuer on `site`: its profile (listing its key), key document, badge class and,
    when asked, a revocation list reference."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    issuer = f"{site.url}/issuer"
    creator = site.put(
        "/keys/1",
        {
            "@context": "https://w3id.org/openbadges/v2",
            "id": f"{site.url}/keys/1",
            "type": "CryptographicKey",
            "owner": issuer,
            "publicKeyPem": pem.decode(),
        },
    )
    profile: dict[str, Any] = {
        "@context": "https://w3id.org/openbadges/v2",
        "id": issuer,
        "type": "Issuer",
        "name": "Revoking Issuer",
        "url": site.url,
    }
    if list_key:
        profile["publicKey"] = creator
    if revocation_list:
        profile["revocationList"] = revocation_list
    site.put("/issuer", profile)
    badge = site.put(
        "/badges/1",
        {"id": f"{site.url}/badges/1", "type": "BadgeClass", "name": "Signed Badge", "issuer": issuer},
    )
    key = RSAKey.import_key(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return SignedIssuer(site, key, creator, issuer, badge)


def publish_revocations(site: Site, *revoked: Any) -> str:
    return site.put(
        "/revocations",
        {
            "@context": "https://w3id.org/openbadges/v2",
            "id": f"{site.url}/revocations",
            "type": "RevocationList",
            "revokedAssertions": list(revoked),
        },
    )


def test_a_signed_ob2_assertion_in_its_issuers_revocation_list_is_revoked_with_the_reason(site: Site) -> None:
    revocations = f"{site.url}/revocations"
    issuer = signed_issuer(site, revocation_list=revocations)
    revoked, kept = issuer.assertion(1), issuer.assertion(2)
    by_uid = issuer.assertion(3, uid="abc-3")
    publish_revocations(
        site, {"id": revoked["id"], "revocationReason": "Awarded by mistake"}, "urn:other", {"uid": "abc-3"}
    )

    first = import_bytes(issuer.sign(revoked), online()).verification
    second = import_bytes(issuer.sign(kept), online()).verification
    third = import_bytes(issuer.sign(by_uid), online()).verification

    assert first.status is VerificationStatus.REVOKED, first
    assert first.reason == "revoked by its issuer: Awarded by mistake"
    assert first.reason_pl == "unieważnione przez wystawcę: Awarded by mistake"
    assert "/revocations" in site.requests  # the list was really read
    assert second.status is VerificationStatus.VERIFIED, second
    assert f"revocation list {revocations} checked" in second.reason
    assert third.status is VerificationStatus.REVOKED and revocations in third.reason


@pytest.mark.parametrize("where", ["missing", "closed port", "not json"])
def test_a_revocation_list_that_cannot_be_read_makes_it_not_verifiable(site: Site, where: str) -> None:
    url = {
        "missing": f"{site.url}/revocations",
        "closed port": _closed_port_url(),
        "not json": f"{site.url}/broken",
    }[where]
    site.pages["/broken"] = (200, b"<html>maintenance</html>")
    issuer = signed_issuer(site, revocation_list=url)

    verification = import_bytes(issuer.sign(issuer.assertion(1)), online()).verification

    assert verification.status is VerificationStatus.NOT_VERIFIABLE, verification
    assert f"the issuer's revocation list {url} could not be checked" in verification.reason
    assert "signature valid" in verification.reason  # what was established is still said
    assert "listy unieważnień" in (verification.reason_pl or "")


def test_an_issuer_profile_that_cannot_be_read_leaves_revocation_unchecked_and_says_so(site: Site) -> None:
    issuer = signed_issuer(site)
    del site.pages["/issuer"]

    verification = import_bytes(issuer.sign(issuer.assertion(1)), online()).verification

    assert verification.status is VerificationStatus.NOT_VERIFIABLE, verification
    assert "revocation list could not be checked" in verification.reason


def test_an_issuer_copy_embedded_in_the_badge_does_not_stand_in_for_its_unreadable_profile(
    site: Site,
) -> None:
    issuer = signed_issuer(site, revocation_list=publish_revocations(site))
    site.put(
        "/badges/1",
        {
            "id": issuer.badge,
            "type": "BadgeClass",
            "name": "Signed Badge",
            "issuer": {"id": issuer.issuer, "type": "Issuer", "name": "Copy without a list"},
        },
    )
    del site.pages["/issuer"]

    verification = import_bytes(issuer.sign(issuer.assertion(1)), online()).verification

    assert verification.status is VerificationStatus.NOT_VERIFIABLE, verification
    assert "revocation list could not be checked" in verification.reason


def test_offline_the_revocation_check_is_said_to_be_not_made(site: Site) -> None:
    issuer = signed_issuer(site, revocation_list=publish_revocations(site))

    verification = import_bytes(issuer.sign(issuer.assertion(1)), ImportContext(learner=LEARNER)).verification

    assert verification.status is VerificationStatus.NOT_VERIFIABLE
    assert "the issuer's revocation list: network fetches are off" in verification.reason
    assert site.requests == []


def test_a_signed_ob2_assertion_whose_key_its_issuer_does_not_list_is_issuer_unknown(site: Site) -> None:
    issuer = signed_issuer(site, list_key=False)

    verification = import_bytes(issuer.sign(issuer.assertion(1)), online()).verification

    assert verification.status is VerificationStatus.ISSUER_UNKNOWN, verification
    assert "does not list the key (publicKey)" in verification.reason


def test_a_signed_ob2_assertion_whose_profile_lists_the_key_is_verified(site: Site) -> None:
    issuer = signed_issuer(site, revocation_list=publish_revocations(site))

    verification = import_bytes(issuer.sign(issuer.assertion(1)), online()).verification

    assert verification.status is VerificationStatus.VERIFIED, verification
    assert f"which the issuer profile served at {issuer.issuer} lists as its own" in verification.reason


def test_a_signed_ob2_assertion_issued_in_the_future_is_invalid_without_further_fetches(site: Site) -> None:
    issuer = signed_issuer(site, revocation_list=publish_revocations(site))

    verification = import_bytes(
        issuer.sign(issuer.assertion(1, issuedOn="2099-06-01T00:00:00Z")), online()
    ).verification

    assert verification.status is VerificationStatus.INVALID, verification
    assert "valid only from 2099-06-01 00:00 UTC (issuedOn)" in verification.reason
    assert "/revocations" not in site.requests


def test_a_signed_ob2_assertion_without_a_creator_is_checked_with_the_keys_its_issuer_declares(
    site: Site,
) -> None:
    issuer = signed_issuer(site, revocation_list=publish_revocations(site))
    site.put(
        "/issuer",
        {
            "id": issuer.issuer,
            "type": "Issuer",
            "name": "Declaring Issuer",
            "publicKey": [f"{site.url}/keys/missing", issuer.creator],
            "revocationList": f"{site.url}/revocations",
        },
    )
    without_creator = issuer.assertion(1, verification={"type": "SignedBadge"})
    stranger = RSAKey.generate_key(2048)

    by_declared_key = import_bytes(issuer.sign(without_creator), online()).verification
    by_stranger = import_bytes(
        jws.serialize_compact({"alg": "RS256"}, json.dumps(without_creator), stranger).encode(), online()
    ).verification

    assert by_declared_key.status is VerificationStatus.VERIFIED, by_declared_key
    assert f"revocation list {site.url}/revocations checked" in by_declared_key.reason
    assert by_stranger.status is VerificationStatus.INVALID, by_stranger
    assert "matches none of the 1 keys the issuer profile" in by_stranger.reason


# ------------------------------------------------------------------------------ OB 2.0 hosted


def hosted(site: Site, *, issuer_site: Site | None = None) -> dict[str, Any]:
    issuer_site = issuer_site or site
    issuer = issuer_site.put(
        "/issuer", {"id": f"{issuer_site.url}/issuer", "type": "Issuer", "name": "Hosting Issuer"}
    )
    badge = site.put(
        "/badges/1",
        {"id": f"{site.url}/badges/1", "type": "BadgeClass", "name": "Hosted Badge", "issuer": issuer},
    )
    assertion = ob2_assertion(f"{site.url}/assertions/1", badge, {"type": "HostedBadge"})
    site.put("/assertions/1", assertion)
    return assertion


def test_a_hosted_assertion_its_issuer_now_serves_as_revoked_is_revoked_with_the_reason(site: Site) -> None:
    assertion = hosted(site)
    site.put("/assertions/1", {"id": assertion["id"], "revoked": True, "revocationReason": "Plagiarism"})

    verification = import_bytes(json.dumps(assertion).encode(), online()).verification

    assert verification.status is VerificationStatus.REVOKED, verification
    assert verification.reason == "revoked by its issuer: Plagiarism"


def test_a_hosted_assertion_answered_with_410_is_revoked(site: Site) -> None:
    assertion = hosted(site)
    site.put("/assertions/1", {"id": assertion["id"], "revoked": True}, status=410)

    verification = import_bytes(json.dumps(assertion).encode(), online()).verification

    assert verification.status is VerificationStatus.REVOKED, verification
    assert "410 Gone" in verification.reason


def test_a_revoked_stub_without_a_reason_still_says_it_is_revoked(site: Site) -> None:
    assertion = hosted(site)
    site.put("/assertions/1", {"id": assertion["id"], "revoked": True})

    verification = import_bytes(json.dumps(assertion).encode(), online()).verification

    assert verification.status is VerificationStatus.REVOKED
    assert "serves it as revoked" in verification.reason


def test_a_hosted_assertion_served_outside_its_issuers_origin_is_issuer_unknown(
    site: Site, elsewhere: Site
) -> None:
    assertion = hosted(site, issuer_site=elsewhere)  # the issuer's profile lives on another origin

    verification = import_bytes(json.dumps(assertion).encode(), online()).verification

    assert verification.status is VerificationStatus.ISSUER_UNKNOWN, verification
    assert "not its issuer's own https origin" in verification.reason


def test_an_altered_hosted_assertion_is_still_invalid(site: Site) -> None:
    assertion = hosted(site)

    verification = import_bytes(
        json.dumps(assertion | {"expires": "2099-01-01T00:00:00Z"}).encode(), online()
    ).verification

    assert verification.status is VerificationStatus.INVALID
    assert "differs from the one its issuer serves" in verification.reason


# --------------------------------------------------------------------- tokens refused at once


def _token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> bytes:
    return (
        f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}.{_b64(signature)}".encode()
    )


def _vc_claims(site: Site) -> dict[str, Any]:
    credential = issue(site)  # its key document and status list are on `site`
    credential.pop("proof")
    return {"iss": credential["issuer"]["id"], "vc": credential}


def test_refused_tokens_cause_no_request_at_all(site: Site) -> None:
    claims = _vc_claims(site)
    kid = f"{site.url}/issuers/1#key-1"
    ed = OKPKey.generate_key("Ed25519")
    public_pem = ed.as_pem(private=False)
    signing_input = _token({"alg": "HS256", "kid": kid}, claims).decode().rstrip(".")
    hs256 = f"{signing_input}.{_b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())}"
    confused = jws.serialize_compact(
        {"alg": "ES256", "jwk": ed.as_dict(private=False)}, json.dumps(claims), ECKey.generate_key("P-256")
    )
    ob2 = signed_issuer(site)
    tokens = {
        "alg none": _token({"alg": "none", "kid": kid}, claims),
        "no alg": _token({"kid": kid}, claims, b"sig"),
        "empty signature": _token({"alg": "ES256", "kid": kid}, claims),
        "HS256 with the public key as secret": hs256.encode(),
        "ES256 header, Ed25519 key": confused.encode(),
        "unknown crit": _token(
            {"alg": "ES256", "kid": kid, "crit": ["exp-override"], "exp-override": 1}, claims, b"x" * 64
        ),
        "OB 2.0 alg none": _token({"alg": "none"}, ob2.assertion(1)),
    }
    site.requests.clear()

    for name, token in tokens.items():
        verification = import_bytes(token, online()).verification
        assert verification.status is VerificationStatus.INVALID, (name, verification)

    assert site.requests == []  # not the key, not the status list, not the badge class


def test_an_algorithm_the_fetched_key_cannot_make_is_invalid_before_the_status_list(site: Site) -> None:
    claims = _vc_claims(site)  # the key document on `site` holds an Ed25519 key
    token = jws.serialize_compact(
        {"alg": "ES256", "kid": f"{site.url}/issuers/1#key-1"},
        json.dumps(claims),
        ECKey.generate_key("P-256"),
    )
    site.requests.clear()

    verification = import_bytes(token.encode(), online()).verification

    assert verification.status is VerificationStatus.INVALID, verification
    assert "does not match the key" in verification.reason
    assert site.requests == ["/issuers/1"]  # only the key; nothing after the refusal


# ------------------------------------------------------------------------- OB 3.0 and the policy


def test_a_credential_valid_from_2099_is_invalid_even_with_the_issuers_own_key(site: Site) -> None:
    key = SigningKey("ed25519-1", "Ed25519", ed25519.Ed25519PrivateKey.generate())
    credential = issue(site)
    credential.pop("proof")
    site.put(
        "/issuers/1",
        {
            "id": credential["issuer"]["id"],
            "verificationMethod": [
                {
                    "id": f"{credential['issuer']['id']}#key-1",
                    "type": "Multikey",
                    "controller": credential["issuer"]["id"],
                    "publicKeyMultibase": key.public_multibase(),
                }
            ],
        },
    )
    future = dataintegrity.sign(
        credential | {"validFrom": "2099-01-01T00:00:00Z"},
        key,
        f"{credential['issuer']['id']}#key-1",
        "2026-01-01T00:00:00Z",
    )
    site.requests.clear()

    verification = import_bytes(json.dumps(future).encode(), online()).verification

    assert verification.status is VerificationStatus.INVALID, verification
    assert "valid only from 2099-01-01 00:00 UTC (validFrom)" in verification.reason
    assert "publishes on its own origin" in verification.reason  # the key's standing was good
    assert "/status/1" not in site.requests


def test_a_key_document_on_another_origin_does_not_make_it_verified(site: Site, elsewhere: Site) -> None:
    key = SigningKey("ed25519-1", "Ed25519", ed25519.Ed25519PrivateKey.generate())
    method = f"{elsewhere.url}/keys/1#key-1"
    elsewhere.put(
        "/keys/1",
        {
            "id": f"{elsewhere.url}/keys/1",
            "verificationMethod": [
                {"id": method, "type": "Multikey", "publicKeyMultibase": key.public_multibase()}
            ],
        },
    )
    credential = issue(site)
    credential.pop("proof")
    signed = dataintegrity.sign(credential, key, method, "2026-01-01T00:00:00Z")

    verification = import_bytes(json.dumps(signed).encode(), online()).verification

    assert verification.status is VerificationStatus.ISSUER_UNKNOWN, verification
    assert "not on the issuer's own https origin" in verification.reason


def _es256_issuer(site: Site) -> tuple[ECKey, dict[str, Any]]:
    """A P-256 key its issuer profile on `site` lists as `#key-es`, and VC-JWT claims of that issuer."""
    key = ECKey.generate_key("P-256")
    claims = _vc_claims(site)
    issuer = claims["iss"]
    method = {"id": f"{issuer}#key-es", "type": "JsonWebKey", "publicKeyJwk": key.as_dict(private=False)}
    site.put("/issuers/1", {"id": issuer, "verificationMethod": [method]})
    return key, claims


def test_vc_jwt_levels_kid_on_the_issuer_origin_is_verified_an_embedded_jwk_is_not(site: Site) -> None:
    key, claims = _es256_issuer(site)
    issuer = claims["iss"]
    by_kid = jws.serialize_compact({"alg": "ES256", "kid": f"{issuer}#key-es"}, json.dumps(claims), key)
    embedded = jws.serialize_compact(
        {"alg": "ES256", "jwk": key.as_dict(private=False)}, json.dumps(claims), key
    )
    thumbprint = jwk_thumbprint_uri(key.as_dict(private=False))
    assert thumbprint is not None
    trusting_the_key = online(trusted_issuers=frozenset({thumbprint}))
    trusting_the_name = online(trusted_issuers=frozenset({issuer}))

    assert import_bytes(by_kid.encode(), online()).verification.status is VerificationStatus.VERIFIED
    unknown = import_bytes(embedded.encode(), online()).verification
    assert unknown.status is VerificationStatus.ISSUER_UNKNOWN and thumbprint in unknown.reason
    assert (
        import_bytes(embedded.encode(), trusting_the_name).verification.status
        is VerificationStatus.ISSUER_UNKNOWN
    )
    assert (
        import_bytes(embedded.encode(), trusting_the_key).verification.status is VerificationStatus.VERIFIED
    )


def test_a_vc_jwt_whose_relative_kid_its_issuer_profile_lists_is_verified(site: Site) -> None:
    key, claims = _es256_issuer(site)
    issuer = claims["iss"]

    relative = jws.serialize_compact({"alg": "ES256", "kid": "key-es"}, json.dumps(claims), key)
    unknown = jws.serialize_compact({"alg": "ES256", "kid": "key-other"}, json.dumps(claims), key)

    verified = import_bytes(relative.encode(), online()).verification
    assert verified.status is VerificationStatus.VERIFIED, verified
    assert f"issuer profile {issuer}" in verified.reason
    assert import_bytes(unknown.encode(), online()).verification.status is VerificationStatus.NOT_VERIFIABLE


def test_a_submitted_link_to_a_withdrawn_assertion_is_revoked_not_rejected(site: Site) -> None:
    assertion = hosted(site)
    gone = site.put("/assertions/gone", {"revoked": True}, status=410)
    site.put("/assertions/1", {"id": assertion["id"], "revoked": True, "revocationReason": "Withdrawn"})

    answered_gone = import_url(gone, online())
    served_as_revoked = import_url(assertion["id"], online())

    assert answered_gone.verification.status is VerificationStatus.REVOKED, answered_gone.verification
    assert "410 Gone" in answered_gone.verification.reason and answered_gone.urls == [gone]
    assert served_as_revoked.verification.status is VerificationStatus.REVOKED
    assert served_as_revoked.verification.reason == "revoked by its issuer: Withdrawn"


def _status_signer(site: Site) -> Any:
    """Signs OB 3.0 credentials of the site's issuer (one key, on its origin) with a credentialStatus."""
    key = SigningKey("ed25519-1", "Ed25519", ed25519.Ed25519PrivateKey.generate())
    credential = issue(site)
    credential.pop("proof")
    issuer = credential["issuer"]["id"]
    site.put(
        "/issuers/1",
        {
            "id": issuer,
            "verificationMethod": [
                {"id": f"{issuer}#key-1", "type": "Multikey", "publicKeyMultibase": key.public_multibase()}
            ],
        },
    )

    def sign(status: dict[str, Any]) -> bytes:
        signed = dataintegrity.sign(
            credential | {"credentialStatus": status}, key, f"{issuer}#key-1", "2026-01-01T00:00:00Z"
        )
        return json.dumps(signed).encode()

    return sign


def test_ob3_status_lists_in_their_other_forms_are_read(site: Site) -> None:
    from ebackpack.domain.credentials import statuslist

    sign = _status_signer(site)
    plain = statuslist.encode([3]).removeprefix("u")  # StatusList2021: base64url without multibase
    site.put(
        "/sl2021",
        {
            "id": f"{site.url}/sl2021",
            "type": ["VerifiableCredential", "StatusList2021Credential"],
            "credentialSubject": {"type": "StatusList2021", "encodedList": plain},
        },
    )
    as_jwt = {
        "vc": {
            "type": ["VerifiableCredential", "BitstringStatusListCredential"],
            "credentialSubject": {"type": "BitstringStatusList", "encodedList": statuslist.encode([5])},
        }
    }
    site.pages["/bitstring.jwt"] = (200, _token({"alg": "ES256"}, as_jwt, b"not checked"))
    site.put(
        "/vcrl",
        {
            "id": f"{site.url}/vcrl",
            "revokedCredentials": [
                {"id": "urn:uuid:9b3a7d1e-0000-4000-8000-000000000001", "revocationReason": "Exam retaken"}
            ],
        },
    )

    sl2021 = sign(
        {
            "type": "StatusList2021Entry",
            "statusPurpose": "revocation",
            "statusListIndex": "3",
            "statusListCredential": f"{site.url}/sl2021",
        },
    )
    jwt_list = sign(
        {
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": "5",
            "statusListCredential": f"{site.url}/bitstring.jwt",
        },
    )
    not_set = sign(
        {
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": "6",
            "statusListCredential": f"{site.url}/bitstring.jwt",
        },
    )
    vcrl = sign({"id": f"{site.url}/vcrl", "type": "1EdTechRevocationList"})
    unreachable = sign(
        {
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": "5",
            "statusListCredential": f"{site.url}/gone",
        },
    )

    assert import_bytes(sl2021, online()).verification.status is VerificationStatus.REVOKED
    assert import_bytes(jwt_list, online()).verification.status is VerificationStatus.REVOKED
    assert import_bytes(not_set, online()).verification.status is VerificationStatus.VERIFIED
    listed = import_bytes(vcrl, online()).verification
    assert (listed.status, listed.reason) == (
        VerificationStatus.REVOKED,
        "revoked by its issuer: Exam retaken",
    )
    unchecked = import_bytes(unreachable, online()).verification
    assert unchecked.status is VerificationStatus.NOT_VERIFIABLE, unchecked
    assert "revocation could not be checked" in unchecked.reason
