"""`ebackpack serve` and `ebackpack gateway webhook` as an operator starts them, against slowloris clients:
sockets that send a request line and then one header byte every half second. Each is closed once the
header-read timeout (`EBACKPACK_HTTP_HEADER_TIMEOUT`, 2 s here) has passed, on a first request and on
the next request of a kept-alive connection; a whole request sent slowly but in time is answered.
A request body that stalls or drips is cut too; a steady one is not. A connection beyond
`EBACKPACK_HTTP_MAX_CONNECTIONS` gets 503.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from ebackpack.adapters.webserver import web_server
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from tests.builders import wait_until_healthy

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 2.0
SOCKETS = 200
TRICKLE = 0.5  # seconds between two header bytes of a slowloris socket
GIVE_UP = 20.0  # a socket still open then counts as never closed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(settings: Settings) -> dict[str, str]:
    keys = ("data_dir", "database_url", "kafka_bootstrap", "topic_prefix", "s3_endpoint", "s3_bucket")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EBACKPACK_")}
    return (
        env
        | {f"EBACKPACK_{k.upper()}": str(getattr(settings, k)) for k in keys}
        | {
            "EBACKPACK_HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "EBACKPACK_EMBEDDED": "true",  # the stack's own test secrets would not pass the production checks
        }
    )


@pytest.fixture(params=["serve", "gateway webhook"])
def server(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Iterator[int]:
    prepare(settings)
    port = free_port()
    command = [sys.executable, "-m", "ebackpack.cli", *request.param.split(), "--port", str(port)]
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(command, env=environment(settings), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_healthy(process, f"http://127.0.0.1:{port}", tmp_path / "server.log")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def slowloris(port: int, count: int, first: bytes) -> list[float]:
    """`count` sockets send `first`, then one header byte every TRICKLE s; returns the seconds after
    which the server closed each (GIVE_UP for one it never closed)."""
    selector = selectors.DefaultSelector()
    opened: dict[socket.socket, float] = {}
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(first + b"X-Slow: ")
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        opened[sock] = time.monotonic()
    closed: dict[socket.socket, float] = {}
    next_byte = time.monotonic() + TRICKLE
    while len(closed) < count and time.monotonic() - min(opened.values()) < GIVE_UP:
        for key, _ in selector.select(timeout=0.1):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            try:
                data = ready.recv(4096)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            if not data:
                closed[ready] = time.monotonic() - opened[ready]
                selector.unregister(ready)
        if time.monotonic() >= next_byte:
            for sock in set(opened) - set(closed):
                with contextlib.suppress(BrokenPipeError, ConnectionResetError, BlockingIOError):
                    sock.send(b"a")
            next_byte += TRICKLE
    for sock in opened:
        sock.close()
    return [closed.get(sock, GIVE_UP) for sock in opened]


def read_response(sock: socket.socket) -> bytes:
    """One whole response (headers and its Content-Length of body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return data


def test_slowloris_sockets_are_closed_after_the_header_timeout(server: int) -> None:
    first_request = slowloris(server, SOCKETS, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert max(first_request) < HEADER_TIMEOUT + 3, sorted(first_request)[-5:]
    assert min(first_request) >= HEADER_TIMEOUT - 0.1  # not before the timeout either
    print(f"{SOCKETS} slowloris sockets closed after {min(first_request):.2f}–{max(first_request):.2f} s")

    # The next request of a kept-alive connection gets its own deadline.
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        sock.settimeout(GIVE_UP)
        assert sock.recv(4096) == b""  # closed, without an answer
        assert time.monotonic() - started < HEADER_TIMEOUT + 3

    # A request whose headers arrive slowly but within the timeout is answered.
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"\r\n"):
            sock.sendall(piece)
            time.sleep(HEADER_TIMEOUT / 4)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


def test_connections_beyond_the_limit_get_503(settings: Settings) -> None:
    """`EBACKPACK_HTTP_MAX_CONNECTIONS`: with that many connections open, the next request gets 503."""
    limit = 10

    async def hello(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})

    port = free_port()
    limited = settings.model_copy(update={"http_max_connections": limit, "http_header_timeout": 30.0})
    server = web_server(hello, limited, "127.0.0.1", port, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    idle: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(limit)]
        deadline = time.monotonic() + 20  # until the server has accepted the idle ones
        while httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code != 503:
            assert time.monotonic() < deadline, "no 503 with the limit's connections open"
            time.sleep(0.1)
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + 20
        while httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the server did not take requests again"
            time.sleep(0.1)
    finally:
        for sock in idle:
            sock.close()
        server.should_exit = True
        thread.join(timeout=10)


def test_outside_the_embedded_stack_the_webhook_does_not_answer_metrics(settings: Settings) -> None:
    from services.gateway.webhook import create_app

    prepare(settings)
    assert not settings.embedded
    port = free_port()
    server = web_server(create_app(settings), settings, "127.0.0.1", port, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get("/metrics").status_code == 404
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def echo_size(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, answers its size."""
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def closed_after(sock: socket.socket, drip: bytes, every: float) -> float:
    """Sends `drip` every `every` s (nothing when empty) until the server closes: the seconds it took."""
    started = time.monotonic()
    sock.setblocking(False)
    while time.monotonic() - started < GIVE_UP:
        ready, _, _ = select.select([sock], [], [], every)
        if ready:
            try:
                if sock.recv(4096) == b"":
                    return time.monotonic() - started
            except ConnectionResetError:
                return time.monotonic() - started
        if drip:
            with contextlib.suppress(BlockingIOError, BrokenPipeError, ConnectionResetError):
                sock.send(drip)
    return GIVE_UP


def test_a_body_that_stalls_or_drips_is_cut_and_a_steady_one_is_not(settings: Settings) -> None:
    port = free_port()
    server = web_server(
        echo_size,
        settings.model_copy(update={"http_header_timeout": HEADER_TIMEOUT}),
        "127.0.0.1",
        port,
        log_level="warning",
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    head = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as stalled:
            stalled.sendall(head + b"x" * 100)
            stall = closed_after(stalled, b"", 0.1)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as dripping:
            dripping.sendall(head)
            drip = closed_after(dripping, b"x", 0.2)  # 5 bytes a second
        assert HEADER_TIMEOUT - 0.1 <= stall < HEADER_TIMEOUT + 3, stall
        assert HEADER_TIMEOUT - 0.1 <= drip < HEADER_TIMEOUT + 3, drip
        print(f"a stalled body cut after {stall:.2f} s, a dripping one after {drip:.2f} s")

        # 100 kB at 20 kB a second, over five times the timeout: answered.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as steady:
            steady.sendall(head)
            for _ in range(50):
                steady.sendall(b"x" * 2000)
                time.sleep(0.1)  # the client's pace, not an assertion
            assert read_response(steady).endswith(b"\r\n\r\n100000")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
