"""The importer's address policy over the forms an attacker writes an internal address in: decided on
the resolved address, with IPv4 carried inside IPv6 unwrapped (mapped, NAT64, 6to4, Teredo)."""

from __future__ import annotations

import ipaddress

import pytest

from services.importer.domain import FetchError
from services.importer.fetch import PolicyFetcher, checked_addresses, refusal

REFUSED = [
    # IPv4
    "127.0.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",
    "100.127.255.254",  # carrier-grade NAT
    "192.0.0.8",
    "192.0.2.1",
    "198.51.100.7",
    "203.0.113.9",
    "198.18.0.1",
    "192.88.99.1",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    # IPv6
    "::",
    "::1",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "fec0::1",
    "100::1",
    "2001:db8::1",
    "3fff::1",
    "2001:10::1",
    "::127.0.0.1",
    "::169.254.169.254",
    "::8.8.8.8",  # IPv4-compatible (deprecated): all refused
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",  # IPv4-mapped
    "::ffff:0:127.0.0.1",  # IPv4-translated
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b::a00:1",  # NAT64 well-known prefix
    "64:ff9b:1::7f00:1",
    "64:ff9b:1::808:808",  # local-use NAT64 (RFC 8215): no fixed embedding
    "2002:7f00:1::1",
    "2002:a9fe:a9fe::1",
    "2002:c0a8:101::1",  # 6to4
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1 (obfuscated)
    "2001:0:7f00:1:8000:63bf:f7f7:f7f7",  # Teredo, server 127.0.0.1
]
ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",
    "100.128.0.1",
    "172.32.0.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:82b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",  # public IPv4 in IPv6 forms
]


@pytest.mark.parametrize("text", REFUSED)
def test_internal_addresses_in_every_form_are_refused(text: str) -> None:
    assert refusal(ipaddress.ip_address(text)) is not None, text


@pytest.mark.parametrize("text", ALLOWED)
def test_public_addresses_are_allowed(text: str) -> None:
    assert refusal(ipaddress.ip_address(text)) is None, text


def test_the_reason_names_the_ipv4_address_carried_inside() -> None:
    why = refusal(ipaddress.ip_address("64:ff9b::7f00:1"))
    assert why is not None and "127.0.0.1" in why


@pytest.mark.parametrize(
    "url",
    [
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[::ffff:127.0.0.1]:8080/x",
        "http://[::1]/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://017700000001/",
        "http://127.1/",
        "http://0/",
        "https://169.254.169.254/latest/meta-data/",
        "http://[fe80::1%25eth0]/",
    ],
)
def test_urls_that_reach_inside_are_refused_before_connecting(url: str) -> None:
    fetcher = PolicyFetcher(timeout=1.0, max_bytes=1024, allow_private=False)
    with pytest.raises(FetchError, match="non-public address|does not resolve"):
        fetcher.get(url)


def test_a_name_is_refused_when_any_of_its_addresses_is_internal() -> None:
    def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.5"]

    with pytest.raises(FetchError, match="non-public address 10.0.0.5"):
        checked_addresses("issuer.example", 443, allow_private=False, resolve=resolve)


def test_the_test_switch_allows_private_addresses() -> None:
    assert {str(a) for a in checked_addresses("localhost", 80, allow_private=True)} <= {"127.0.0.1", "::1"}
    with pytest.raises(FetchError):
        checked_addresses("localhost", 80, allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1/",
        "ftp://example.org/",
        "http:///nohost",
        "http://example.org:99999/",
    ],
)
def test_only_http_urls_with_a_host_and_a_valid_port_are_fetched(url: str) -> None:
    fetcher = PolicyFetcher(timeout=1.0, max_bytes=1024, allow_private=True)
    with pytest.raises(FetchError, match="only http|port"):
        fetcher.get(url)


def test_one_files_fetches_share_a_time_allowance() -> None:
    fetcher = PolicyFetcher(timeout=5.0, max_bytes=1024, allow_private=True, file_seconds=0.0).for_one_file()
    with pytest.raises(FetchError, match="one file's network fetches may take together ran out"):
        fetcher.get("http://127.0.0.1:9/")


def test_an_international_name_is_resolved_in_its_idna_form() -> None:
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["10.0.0.1"]

    fetcher = PolicyFetcher(timeout=1.0, max_bytes=1024, allow_private=False, resolve=resolve)
    with pytest.raises(FetchError, match="non-public address 10.0.0.1"):
        fetcher.get("https://user:secret@Bücher.Example/badge")
    assert asked == ["xn--bcher-kva.example"]
