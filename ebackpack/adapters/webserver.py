"""The HTTP server of the web apps (`ebackpack serve`, `ebackpack gateway webhook`): uvicorn with the
limits it does not set by itself.

- **Header-read timeout** (`EBACKPACK_HTTP_HEADER_TIMEOUT`, 10 s): a connection that has not sent a
  complete request line and headers in that time is closed, on its first request and on every next one
  of a kept-alive connection. uvicorn has only a keep-alive timeout, which a client resets with every
  byte it sends: one byte every few seconds (slowloris) held a connection open for ever.
- **Slow bodies**: once the headers are in, a request body must keep coming at 500 bytes a second on
  average after a first `EBACKPACK_HTTP_HEADER_TIMEOUT` of grace (Apache's `mod_reqtimeout`
  `body=…,MinRate=500`): a body that stalls or drips is cut by closing the connection. Time while the
  server itself has stopped reading (the app is not taking the body yet) does not count.
- **Lingering close**: when the answer comes before the whole request body was read (401, 413, ...)
  and the connection is to be closed, the server first ends its side (FIN after the answer) and reads
  and drops what the client still sends for up to `LINGER_SECONDS`, as Apache does: a client that
  sends its whole body before reading (most do) then gets the answer instead of a connection reset.
- **Connections at once** (`EBACKPACK_HTTP_MAX_CONNECTIONS`, 1000): a request beyond gets 503
  (uvicorn's `limit_concurrency`).
- **Forwarded headers** (`EBACKPACK_TRUSTED_PROXIES`, none): `X-Forwarded-For` / `-Proto` are believed
  only from these addresses or networks. uvicorn believes them from 127.0.0.1 by default, so any client
  on the same host, or behind a proxy that passes the header on, could pick its own address (and so
  escape the per-address rate limit).
- **Metrics outside the embedded stack**: the web apps do not answer `/metrics` there (see
  `adapters.metrics.install_http_metrics`); they serve it on `EBACKPACK_METRICS_PORT` instead (0 = off),
  on `EBACKPACK_HTTP_HOST`, like the workers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ebackpack.adapters.metrics import serve_worker_metrics

if TYPE_CHECKING:
    from starlette.types import ASGIApp
    from uvicorn.server import ServerState

    from ebackpack.config import Settings

log = logging.getLogger(__name__)
KEEP_ALIVE_SECONDS = 5
BODY_MIN_RATE = 500  # bytes a second a request body must average (after the grace period)
LINGER_SECONDS = 2.0  # reading and dropping the rest of an unread body before closing


class _LingeringTransport:
    """The transport as uvicorn's protocol sees it: `close()` goes through the protocol, which may
    linger; everything else is the real transport's."""

    def __init__(self, transport: asyncio.Transport, protocol: BoundedH11Protocol) -> None:
        self._transport, self._protocol = transport, protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        self._protocol.close_lingering()

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()


class _Timer:
    """At most one pending call on the event loop: starting it again replaces the pending one, and it
    is no longer `pending` once it has run or was cancelled."""

    def __init__(self) -> None:
        self._handle: asyncio.TimerHandle | None = None

    @property
    def pending(self) -> bool:
        return self._handle is not None

    def start(self, loop: asyncio.AbstractEventLoop, delay: float, callback: Callable[[], None]) -> None:
        self.cancel()
        self._handle = loop.call_later(delay, self._run, callback)

    def _run(self, callback: Callable[[], None]) -> None:
        self._handle = None
        callback()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request line and headers are not complete
    within `header_timeout` seconds of the connection (or of the previous response), or whose body
    comes slower than `BODY_MIN_RATE` bytes a second after that much grace; a close while the request
    body is still coming lingers (`close_lingering`)."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout: float = getattr(config, "header_timeout", 10.0)
        self._header_timer = _Timer()
        self._body_timer = _Timer()
        self._body_since = 0.0  # when the current body window started (loop time)
        self._body_bytes = 0  # bytes received in it
        self.lingering = False
        self._linger_timer = _Timer()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._real = transport
        super().connection_made(cast(asyncio.Transport, _LingeringTransport(transport, self)))
        self._arm_header_timer()

    def close_lingering(self) -> None:
        """Close; but with a request body still coming, end our side first and drop the rest a while."""
        real = self._real
        if self.lingering or real.is_closing():
            return
        if self.conn.their_state is not h11.SEND_BODY or not real.can_write_eof():
            real.close()
            return
        self.lingering = True
        self._header_timer.cancel()
        self._body_timer.cancel()
        real.write_eof()  # after the answer still buffered: the client reads it, then EOF
        if self.flow.read_paused:
            self.flow.resume_reading()
        self._linger_timer.start(self.loop, LINGER_SECONDS, real.close)

    def eof_received(self) -> None:
        if self.lingering:  # the client has sent all it will
            self._real.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()  # the next request on this connection gets its own deadline

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # the rest of a body nobody reads: dropped
        super().data_received(data)
        if self.conn.their_state is not h11.SEND_BODY:
            self._body_timer.cancel()
        elif not self._body_timer.pending:
            self._start_body_window()
        else:
            self._body_bytes += len(data)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._header_timer, self._body_timer, self._linger_timer):
            timer.cancel()
        super().connection_lost(exc)

    def _start_body_window(self) -> None:
        self._body_since, self._body_bytes = self.loop.time(), 0
        self._body_timer.start(self.loop, self.header_timeout, self._body_check)

    def _body_check(self) -> None:
        if self.conn.their_state is not h11.SEND_BODY or self.transport.is_closing():
            return
        if self.flow.read_paused:  # we stopped reading, not the client: a fresh window once we read on
            self._start_body_window()
            return
        deadline = self._body_since + self.header_timeout + self._body_bytes / BODY_MIN_RATE
        now = self.loop.time()
        if now < deadline:
            self._body_timer.start(self.loop, deadline - now, self._body_check)
            return
        log.info("closed a connection whose request body came slower than %d bytes/s", BODY_MIN_RATE)
        self._real.close()  # no lingering: this client is not sending

    def _arm_header_timer(self) -> None:
        self._header_timer.start(self.loop, self.header_timeout, self._headers_overdue)

    def _headers_overdue(self) -> None:
        # IDLE: h11 has not yet seen a whole request line and headers (a request in progress is SEND_BODY
        # or DONE, and is left alone).
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.info("closed a connection without complete request headers after %.0f s", self.header_timeout)
            self._real.close()


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration plus the header-read timeout its protocol above reads."""

    def __init__(self, app: ASGIApp, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, http=BoundedH11Protocol, **kwargs)
        self.header_timeout = header_timeout


def trusted_proxies(settings: Settings) -> list[str]:
    """The configured proxy addresses and networks, checked (a typo must not trust nobody silently)."""
    proxies = [p.strip() for p in settings.trusted_proxies.split(",") if p.strip()]
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ValueError(
                f"EBACKPACK_TRUSTED_PROXIES: {proxy!r} is not an IP address or network"
            ) from None
    return proxies


def server_config(app: ASGIApp, settings: Settings, host: str, port: int, **kwargs: Any) -> ServerConfig:
    proxies = trusted_proxies(settings)
    return ServerConfig(
        app,
        header_timeout=settings.http_header_timeout,
        host=host,
        port=port,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies,
        limit_concurrency=settings.http_max_connections or None,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        server_header=False,
        **kwargs,
    )


def web_server(
    app: ASGIApp, settings: Settings, host: str | None = None, port: int | None = None, **kwargs: Any
) -> uvicorn.Server:
    """The server of `app`; outside the embedded stack also /metrics on `metrics_port` (0 = off), as the
    apps do not answer /metrics on their public port there."""
    if not settings.embedded:
        serve_worker_metrics(settings)
    return uvicorn.Server(
        server_config(app, settings, host or settings.http_host, port or settings.http_port, **kwargs)
    )


def run(app: ASGIApp, settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve `app` until interrupted (the CLI's `serve` and `gateway webhook`)."""
    check_bind_address(settings, host or settings.http_host)
    web_server(app, settings, host, port).run()


def check_bind_address(settings: Settings, host: str) -> None:
    """The embedded stack (the default) checks no secrets and may offer the development login, which signs
    anyone in as any learner or admin: it serves this machine only, never a network."""
    if not settings.embedded and not settings.dev_login_enabled:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        what = (
            "the development login is on (EBACKPACK_DEV_LOGIN)"
            if settings.dev_login_enabled
            else ("secrets are not checked")
        )
        raise SystemExit(
            f"e-Backpack refuses to listen on {host}: in the embedded stack (EBACKPACK_EMBEDDED=true, the "
            f"default) {what}. Listen on 127.0.0.1, or run in production mode (EBACKPACK_EMBEDDED=false, "
            "EBACKPACK_DEV_LOGIN=false, real secrets: see .env.example)"
        )
