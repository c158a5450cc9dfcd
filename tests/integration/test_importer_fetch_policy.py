"""The importer's fetch policy against a real HTTP server on 127.0.0.1: a name that resolves inside is
refused before any request, the connection goes to the address that was checked (a second DNS answer
cannot switch it), and each redirect hop is checked again."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.importer.domain import FetchError, ImportContext, ImportRejected, Learner
from services.importer.fetch import PolicyFetcher
from services.importer.pipeline import import_url
from tests.http_stub import LoopbackServer, QuietHandler, respond

pytestmark = pytest.mark.integration


class Site:
    """Records every request (path, Host header); /redirect sends the client to `redirect_to`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.redirect_to = ""
        site = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                site.requests.append((self.path, self.headers.get("Host", "")))
                if self.path == "/redirect":
                    respond(self, 302, content_type=None, headers={"Location": site.redirect_to})
                    return
                respond(self, 200, b'{"id": "https://issuer.test/badge"}')

        self.server = LoopbackServer(Handler)
        self.port = self.server.port


@pytest.fixture
def site() -> Iterator[Site]:
    server = Site()
    with server.server:
        yield server


def answers(*rounds: list[str]) -> tuple[Callable[[str, int], list[str]], list[str]]:
    """A resolver that gives each round's addresses in turn (the last one again after), and the log."""
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return rounds[min(len(asked), len(rounds)) - 1]

    return resolve, asked


def test_a_name_that_resolves_to_loopback_is_refused_before_any_request(site: Site) -> None:
    strict = PolicyFetcher(timeout=2.0, max_bytes=1024, allow_private=False)
    ctx = ImportContext(learner=Learner(email="learner@example.org"), fetcher=strict)

    with pytest.raises(ImportRejected, match="localhost resolves to the non-public address"):
        import_url(f"http://localhost:{site.port}/badge", ctx)
    with pytest.raises(FetchError, match="carries the IPv4 address 127.0.0.1"):
        strict.get(f"http://[::ffff:127.0.0.1]:{site.port}/badge")
    assert site.requests == []


def test_the_connection_goes_to_the_checked_address_with_the_name_in_the_host_header(site: Site) -> None:
    resolve, asked = answers(["127.0.0.1"])  # issuer.test exists in no DNS: only the checked answer
    fetcher = PolicyFetcher(timeout=2.0, max_bytes=1024, allow_private=True, resolve=resolve)

    body = fetcher.get(f"http://issuer.test:{site.port}/badge")

    assert b"issuer.test" in body
    assert site.requests == [("/badge", f"issuer.test:{site.port}")]
    assert asked == ["issuer.test"]  # resolved once: httpx did not look the name up again


def test_a_second_dns_answer_cannot_switch_the_address(site: Site) -> None:
    """Rebinding: a public answer for the check, then loopback. Only the checked answer is used, so
    the local server is never reached (the public one is not reachable from here: the fetch fails)."""
    resolve, asked = answers(["93.184.216.34"], ["127.0.0.1"])
    fetcher = PolicyFetcher(timeout=1.0, max_bytes=1024, allow_private=False, resolve=resolve)

    with pytest.raises(FetchError):
        fetcher.get(f"http://rebind.test:{site.port}/badge")

    assert site.requests == [] and asked == ["rebind.test"]


def test_every_redirect_hop_is_resolved_and_checked_again(site: Site) -> None:
    resolve, asked = answers(["127.0.0.1"])
    fetcher = PolicyFetcher(timeout=2.0, max_bytes=1024, allow_private=True, resolve=resolve)
    site.redirect_to = f"http://second.test:{site.port}/badge"

    fetcher.get(f"http://first.test:{site.port}/redirect")

    assert asked == ["first.test", "second.test"]
    assert site.requests == [("/redirect", f"first.test:{site.port}"), ("/badge", f"second.test:{site.port}")]

    site.redirect_to = "file:///etc/passwd"
    with pytest.raises(FetchError, match="only http"):
        fetcher.get(f"http://first.test:{site.port}/redirect")


def test_the_next_checked_address_is_tried_when_one_refuses_the_connection(site: Site) -> None:
    resolve, _ = answers(["::1", "127.0.0.1"])  # the site listens on IPv4 only
    fetcher = PolicyFetcher(timeout=2.0, max_bytes=1024, allow_private=True, resolve=resolve)

    assert b"issuer.test" in fetcher.get(f"http://dual.test:{site.port}/badge")
    assert site.requests == [("/badge", f"dual.test:{site.port}")]


def certificate_authority(tmp: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(a client context trusting a fresh CA, a server context with that CA's certificate for `name`)."""
    now = datetime.now(UTC)

    def cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            names = x509.SubjectAlternativeName([x509.DNSName(subject)])
            builder = builder.add_extension(names, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca_cert = cert("Test CA", ca_key, ca_name, ca_key, ca=True)
    leaf = cert(name, leaf_key, ca_name, ca_key, ca=False)
    (tmp / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp / "leaf.key").write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    client = ssl.create_default_context(cafile=str(tmp / "ca.pem"))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp / "leaf.pem", tmp / "leaf.key")
    return client, server


def test_https_to_the_checked_address_still_checks_the_certificate_for_the_name(
    site: Site, tmp_path: Path
) -> None:
    client_tls, server_tls = certificate_authority(tmp_path, "issuer.test")
    http = site.server.server
    http.socket = server_tls.wrap_socket(http.socket, server_side=True)
    resolve, _ = answers(["127.0.0.1"])

    def fetcher() -> PolicyFetcher:
        return PolicyFetcher(timeout=2.0, max_bytes=1024, allow_private=True, resolve=resolve, tls=client_tls)

    # SNI and the certificate check use the name, while the connection goes to the checked address
    assert b"issuer.test" in fetcher().get(f"https://issuer.test:{site.port}/badge")
    with pytest.raises(FetchError, match="certificate|hostname"):
        fetcher().get(f"https://other.test:{site.port}/badge")  # same address, a name the certificate lacks
    assert site.requests == [("/badge", f"issuer.test:{site.port}")]
