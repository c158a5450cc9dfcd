"""The importer's only way onto the network: opt-in, bounded in time and size, public addresses only.

A credential names URLs that its uploader chose. Without these limits an upload could make the importer
scan the internal network (SSRF), hang on a slow server or fill memory with an endless body.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

from ebackpack.config import Settings
from services.importer.domain import FetchError

MAX_REDIRECTS = 3


def _check_address(host: str, port: int, allow_private: bool) -> None:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise FetchError(f"{host} does not resolve: {exc.strerror}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not allow_private and not address.is_global:
            raise FetchError(f"{host} resolves to the non-public address {address}: refused")


class PolicyFetcher:
    """GET with the import policy. Redirects are followed by hand so every hop is checked.

    Known limit: the address is checked before httpx connects, so a DNS answer that changes between the
    two (rebinding) is not caught; a proxy that enforces the policy would be the complete answer.
    """

    def __init__(self, *, timeout: float, max_bytes: int, allow_private: bool) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.allow_private = allow_private

    @classmethod
    def for_settings(cls, settings: Settings) -> PolicyFetcher | None:
        if not settings.import_network:
            return None
        return cls(timeout=settings.import_fetch_timeout, max_bytes=settings.import_fetch_max_bytes,
                   allow_private=settings.import_allow_private)

    def get(self, url: str, accept: str = "application/json") -> bytes:
        try:
            return self._get(url, accept)
        except httpx.HTTPError as exc:
            raise FetchError(f"{url}: {type(exc).__name__} {exc}".strip()) from None

    def _get(self, url: str, accept: str) -> bytes:
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                self._check_url(url)
                with client.stream("GET", url, headers={"Accept": accept}) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = str(response.url.join(response.headers["location"]))
                        continue
                    if response.status_code != 200:
                        raise FetchError(f"{url} answered HTTP {response.status_code}")
                    return self._read_capped(response, url)
        raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")

    def _check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise FetchError(f"{url[:100]}: only http(s) URLs are fetched")
        _check_address(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                       self.allow_private)

    def _read_capped(self, response: httpx.Response, url: str) -> bytes:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > self.max_bytes:
                raise FetchError(f"{url}: response larger than {self.max_bytes} bytes")
        return bytes(body)
