"""Little HTTP servers on 127.0.0.1 for tests that stand in for another site (an issuer's website, Moodle's
web services, a gateway): answering a request, and serving a handler class on a free port."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that does not log every request to stderr."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        pass


def respond(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    *,
    content_type: str | None = "application/json",
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answers the handler's request with `status`, `headers`, the content type (none if None) and `body`."""
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    if content_type is not None:
        handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class LoopbackServer:
    """`handler` served on 127.0.0.1 on a free port (bound at once, so `url` is known before it serves), in a
    daemon thread from `start()` (or `with`) until `close()`. `daemon_threads`: close without waiting for
    requests still being answered."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, daemon_threads: bool = False) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = daemon_threads
        self.port: int = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
