"""The importer's only way onto the network: opt-in, bounded in time and size, public addresses only.

A credential names URLs that its uploader chose. Without these limits an upload could make the importer
reach the internal network or the cloud metadata service (SSRF), hang on a slow server or fill memory
with an endless body.

The address is decided after resolving, and the connection goes to the address that was checked (the
URL's host is replaced by it; `Host` and TLS SNI / certificate check keep the name), so a DNS answer
that changes between check and connection (rebinding) cannot switch it. Every redirect hop is checked
the same way. An address is refused when it, or the IPv4 address it carries (IPv4-mapped, NAT64, 6to4,
Teredo), is in one of the special-purpose ranges below; IPv6 must moreover be global unicast (2000::/3).
`ipaddress.is_global` alone is not used: in Python 3.11 it lets `::127.0.0.1` and `64:ff9b::7f00:1`
through.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import httpx

from ebackpack.config import Settings
from services.importer.domain import FetchError

MAX_REDIRECTS = 3
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

_V4_DENIED = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (cloud metadata services live here)
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",  # documentation
        "192.31.196.0/24",
        "192.52.193.0/24",
        "192.175.48.0/24",  # AS112, AMT, direct delegation AS112
        "192.88.99.0/24",  # 6to4 relay anycast
        "198.18.0.0/15",  # benchmarking
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255
    )
)
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_V6_DENIED = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "2001::/23",  # IETF protocol assignments (Teredo, 2001::/32, is unwrapped first)
        "2001:db8::/32",
        "3fff::/20",  # documentation
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known prefix: the low 32 bits are the IPv4 address
_TEREDO = ipaddress.IPv6Network("2001::/32")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def refusal(address: Address) -> str | None:
    """Why the importer must not connect to `address`, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = _carried_ipv4(address)
        if carried is not None:
            why = refusal(carried)
            return f"it carries the IPv4 address {carried}, and {why}" if why else None
        if address not in _V6_GLOBAL_UNICAST:
            return (
                "it is not a global unicast IPv6 address (loopback, unspecified, IPv4-compatible, "
                "local NAT64, unique-local, link-local, multicast or reserved)"
            )
        return "it is in a special-purpose IPv6 range" if _in(address, _V6_DENIED) else None
    return "it is in a private or special-purpose IPv4 range" if _in(address, _V4_DENIED) else None


def _carried_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address that an IPv6 form stands for (IPv4-mapped, NAT64 well-known prefix, 6to4, the
    Teredo server and client); the stricter of Teredo's two is returned."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    if address in _TEREDO and address.teredo is not None:
        server, client = address.teredo
        return client if refusal(client) else server
    return None


def _in(address: Address, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    return any(address in network for network in networks)


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"{host} does not resolve: {getattr(exc, 'strerror', None) or exc}") from None
    return [str(info[4][0]) for info in infos]


def checked_addresses(
    host: str, port: int, allow_private: bool, resolve: Resolver = system_resolver
) -> list[Address]:
    """The addresses to connect to, in the resolver's order: every address `host` resolves to must pass
    (one that does not is a sign of a name pointing inside)."""
    addresses: list[Address] = []
    for text in resolve(host, port):
        address = ipaddress.ip_address(text.split("%", 1)[0])  # no zone index: link-local is refused
        why = refusal(address)
        if why and not allow_private:
            raise FetchError(f"{host} resolves to the non-public address {address}: refused ({why})")
        addresses.append(address)
    if not addresses:
        raise FetchError(f"{host} does not resolve")
    return list(dict.fromkeys(addresses))


@dataclass(kw_only=True, eq=False)  # eq=False: fetchers compare by identity (each has its own deadline)
class PolicyFetcher:
    """GET with the import policy. Redirects are followed by hand so every hop is checked.

    `for_one_file()` gives a fetcher whose requests together may take at most `file_seconds`, so the
    network cannot use up a file's whole time budget (see sandbox.py): a fetch over it fails and the
    check says so.
    """

    timeout: float
    max_bytes: int
    allow_private: bool
    file_seconds: float | None = None
    resolve: Resolver = system_resolver
    # None: the system's trusted certificates (tests pass their own authority)
    tls: ssl.SSLContext | None = None
    _deadline: float | None = field(default=None, init=False)

    @classmethod
    def for_settings(cls, settings: Settings) -> PolicyFetcher | None:
        if not settings.import_network:
            return None
        return cls(
            timeout=settings.import_fetch_timeout,
            max_bytes=settings.import_fetch_max_bytes,
            allow_private=settings.import_allow_private,
            file_seconds=max(1.0, settings.import_file_seconds - 2.0),
        )

    def for_one_file(self) -> PolicyFetcher:
        fetcher = replace(self)  # the same policy, with a deadline of its own
        fetcher._deadline = None if self.file_seconds is None else time.monotonic() + self.file_seconds
        return fetcher

    def get(self, url: str, accept: str = "application/json") -> bytes:
        try:
            return self._get(url, accept)
        except httpx.HTTPError as exc:
            raise FetchError(f"{url}: {type(exc).__name__} {exc}".strip()) from None

    def _get(self, url: str, accept: str) -> bytes:
        for _ in range(MAX_REDIRECTS + 1):
            # A client per hop: a connection (and the name its TLS was checked for) is never reused
            # for another host that resolves to the same address.
            with httpx.Client(
                follow_redirects=False, trust_env=False, verify=self.tls if self.tls is not None else True
            ) as client:
                response = self._send_pinned(client, url, accept)
                try:
                    if response.is_redirect and "location" in response.headers:
                        url = str(httpx.URL(url).join(response.headers["location"]))
                        continue
                    if response.status_code != 200:
                        raise FetchError(f"{url} answered HTTP {response.status_code}")
                    return self._read_capped(response, url)
                finally:
                    response.close()
        raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")

    def _send_pinned(self, client: httpx.Client, url: str, accept: str) -> httpx.Response:
        """GET to a checked address of `url`'s host (the next one when one refuses the connection),
        with the name in `Host` and in TLS (SNI and the certificate check)."""
        try:
            parts = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise FetchError(f"{url[:100]}: not a valid URL (its host or port)") from None
        if parts.scheme not in ("https", "http") or not parts.raw_host:
            raise FetchError(f"{url[:100]}: only http(s) URLs are fetched")
        host = parts.raw_host.decode("ascii")  # an international name in its IDNA (punycode) form
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if not 0 < port < 65536:
            raise FetchError(f"{url[:100]}: the port is not a number from 1 to 65535")
        addresses = checked_addresses(host, port, self.allow_private, self.resolve)
        for address in addresses:
            literal = f"[{address}]" if address.version == 6 else str(address)
            pinned = f"{parts.scheme}://{literal}:{port}{parts.raw_path.decode('ascii')}"
            request = client.build_request(
                "GET",
                pinned,
                timeout=self._timeout(),
                headers={"Accept": accept, "Host": parts.netloc.decode("ascii")},  # no user:password
                extensions={"sni_hostname": host} if parts.scheme == "https" else {},
            )
            try:
                return client.send(request, stream=True)
            except httpx.ConnectError:
                if address == addresses[-1]:
                    raise
        raise FetchError(f"{host} does not resolve")  # not reached: addresses is never empty

    def _timeout(self) -> float:
        if self._deadline is None:
            return self.timeout
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise FetchError(
                f"the {self.file_seconds:g} s that one file's network fetches may take together ran out"
            )
        return min(self.timeout, left)

    def _read_capped(self, response: httpx.Response, url: str) -> bytes:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > self.max_bytes:
                raise FetchError(f"{url}: response larger than {self.max_bytes} bytes")
        return bytes(body)
