"""The backpack's web server under hostile clients, with real sockets against the server `ebackpack serve`
runs (uvicorn configured by `ebackpack.adapters.webserver`).

- Uploads: a chunked multipart body of up to 64 MiB to `/api/attestations` and `/attestations` is
  answered 401 / 303 / 403 before the app reads a byte of it when the sender may not upload, and 413
  once the body passes the limit when it may; the app never reads (so never spools) more than the
  limit. Measured: the bytes the app took from the server, and the bytes the client got to send.
- Outside the embedded stack `/metrics` is not on the public port and `/docs`, `/openapi.json` are for
  administrators.
"""

from __future__ import annotations

import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ebackpack.adapters.webserver import LINGER_SECONDS, server_config, web_server
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.sample_data import default_dataset
from services.backpack.app import create_app
from services.backpack.auth import issue_token
from services.backpack.session import SESSION_COOKIE
from services.gateway.profiles import store_profiles
from tests.conftest import isolated, reserve_port

pytestmark = pytest.mark.e2e

ALICE = 5722
LIMIT = 1024 * 1024  # import_max_upload_bytes of these tests
OVERHEAD = 64 * 1024  # multipart framing allowed around the file (services/backpack/bodies.py)
OFFERED = 64 * 1024 * 1024  # what a hostile client tries to send (the issue's probe sent 1 GiB)
CHUNK = 64 * 1024
BOUNDARY = "probe-boundary"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class BodyCounter:
    """Outermost ASGI layer: the request body bytes the app took from the server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.read = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.read += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


class Served:
    """An ASGI app served as `ebackpack serve` serves it, in a thread, on a reserved socket."""

    def __init__(self, app: ASGIApp, settings: Settings, sock: socket.socket) -> None:
        host, port = sock.getsockname()[:2]
        self.port = port
        self.server = uvicorn.Server(server_config(app, settings, host, port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the web server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Site:
    settings: Settings
    url: str
    port: int
    counter: BodyCounter
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str = ""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, stack_settings: Settings) -> Iterator[Site]:
    web = reserve_port()
    settings = isolated(stack_settings, tmp_path_factory.mktemp("limits"), web).model_copy(
        update={"dev_login": True, "import_max_upload_bytes": LIMIT}
    )
    sessions = prepare(settings)
    store_profiles(sessions, default_dataset().profiles)
    counter = BodyCounter(create_app(settings))
    try:
        with Served(counter, settings, web) as served:
            yield Site(settings, settings.public_url, served.port, counter)
    finally:
        web.close()


def logged_in(site: Site, account: int | str = ALICE) -> tuple[str, str]:
    """A session cookie and its CSRF token, through the development login form."""
    with httpx.Client(base_url=site.url, follow_redirects=False, timeout=30) as http:
        token = CSRF_FIELD.search(http.get("/login").text)
        assert token
        answer = http.post("/login/dev", data={"csrf_token": token.group(1), "account": str(account)})
        assert answer.status_code == 303, answer.text
        page = http.get("/login")
        assert page.status_code == 200
        csrf = CSRF_FIELD.search(page.text)
        assert csrf
        return http.cookies[SESSION_COOKIE], csrf.group(1)


@dataclass
class Probe:
    status: int
    headers: str
    sent: int  # body bytes the client got to send before the answer came
    read_by_app: int  # body bytes the app took from the server
    seconds: float


def chunked_upload(site: Site, target: str, headers: dict[str, str], offered: int = OFFERED) -> Probe:
    """A multipart file sent with `Transfer-Encoding: chunked`, 64 KiB a chunk, until an answer comes
    (checked before every chunk) or `offered` bytes are sent."""
    before = site.counter.read
    sock = socket.create_connection(("127.0.0.1", site.port), timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHUNK)
    started = time.monotonic()
    head = [
        f"POST {target} HTTP/1.1",
        f"Host: 127.0.0.1:{site.port}",
        "Transfer-Encoding: chunked",
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
    ]
    head += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    part = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.json"\r\n'
        "Content-Type: application/json\r\n\r\n"
    ).encode()
    payload, sent, answer = part + b" " * (CHUNK - len(part)), 0, b""
    try:
        while sent < offered:
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable:
                break
            assert writable, "the server neither answered nor read for 30 s"
            sock.sendall(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
            sent += len(payload)
            payload = b" " * CHUNK
        else:
            sock.sendall(f"\r\n--{BOUNDARY}--\r\n0\r\n\r\n".encode())
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed the connection after answering: read the answer
    sock.settimeout(30)
    try:
        while b"\r\n\r\n" not in answer and (data := sock.recv(65536)):
            answer += data
    finally:
        sock.close()
    seconds = time.monotonic() - started
    status_line, _, rest = answer.decode("latin-1").partition("\r\n")
    assert status_line.startswith("HTTP/1.1 "), answer[:200]
    return Probe(
        int(status_line.split()[1]),
        rest.split("\r\n\r\n")[0].lower(),
        sent,
        site.counter.read - before,
        seconds,
    )


def test_uploads_are_refused_before_the_body_is_read_when_the_sender_may_not_upload(site: Site) -> None:
    cookie, csrf = logged_in(site)
    session = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    admin_cookie, admin_csrf = logged_in(site, "admin")
    admin = {"Cookie": f"{SESSION_COOKIE}={admin_cookie}"}
    probes = {
        "api, no login": chunked_upload(site, "/api/attestations", {}),
        "api, a bad token": chunked_upload(site, "/api/attestations", {"Authorization": "Bearer nonsense"}),
        "api, session without CSRF": chunked_upload(site, "/api/attestations", session),
        "page, no login": chunked_upload(site, "/attestations", {}),
        "page, session without CSRF": chunked_upload(site, "/attestations", session),
        "page, session, a wrong CSRF": chunked_upload(site, "/attestations?csrf_token=wrong-token", session),
        "page, an administrator": chunked_upload(site, f"/attestations?csrf_token={admin_csrf}", admin),
    }
    statuses = {what: probe.status for what, probe in probes.items()}
    assert statuses == {
        "api, no login": 401,
        "api, a bad token": 401,
        "api, session without CSRF": 403,
        "page, no login": 303,
        "page, session without CSRF": 403,
        "page, session, a wrong CSRF": 403,
        "page, an administrator": 403,
    }
    for what, probe in probes.items():
        assert probe.read_by_app == 0, (what, probe)  # not one byte of the body was read, none spooled
        assert "connection: close" in probe.headers, what
        assert probe.sent < OFFERED, what
    print({what: (p.status, p.sent, p.read_by_app, round(p.seconds, 3)) for what, p in probes.items()})


def test_an_allowed_upload_is_cut_at_the_limit_chunked_or_declared(site: Site) -> None:
    cookie, csrf = logged_in(site)
    session = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    bearer = {"Authorization": f"Bearer {issue_token(site.settings, ALICE)}"}
    probes = {
        "api, bearer token": chunked_upload(site, "/api/attestations", bearer),
        "api, session + X-CSRF-Token": chunked_upload(
            site, "/api/attestations", session | {"X-CSRF-Token": csrf}
        ),
        "page, session + csrf_token in the URL": chunked_upload(
            site, f"/attestations?csrf_token={csrf}", session
        ),
    }
    for what, probe in probes.items():
        assert probe.status == 413, (what, probe)
        assert "connection: close" in probe.headers, what
        # The app read up to the limit and at most one read of the socket more: nothing beyond touched disk.
        assert LIMIT < probe.read_by_app <= LIMIT + OVERHEAD + 256 * 1024, (what, probe)
        assert probe.sent < OFFERED, (what, probe)  # the client was stopped, not drained
    print({what: (p.status, p.sent, p.read_by_app, round(p.seconds, 3)) for what, p in probes.items()})

    # A declared Content-Length over the limit is refused before anything is read: only headers sent.
    before = site.counter.read
    with socket.create_connection(("127.0.0.1", site.port), timeout=30) as sock:
        sock.sendall(
            (
                f"POST /api/attestations HTTP/1.1\r\nHost: x\r\nContent-Length: {OFFERED}\r\n"
                f"Authorization: {bearer['Authorization']}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n"
            ).encode()
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 413 ")
    assert site.counter.read == before

    # A client that sends its whole body before reading (httpx, like most) gets the 413, not a reset.
    with httpx.Client(timeout=30) as http:
        big = http.post(
            f"{site.url}/api/attestations",
            headers=bearer,
            files={"file": ("big.json", b" " * (8 * LIMIT), "application/json")},
        )
    assert big.status_code == 413 and "limit is 1,048,576 bytes" in big.json()["detail"]


def test_an_upload_within_the_limit_still_works_through_the_form_and_the_api(site: Site) -> None:
    cookie, csrf = logged_in(site)
    example = (
        Path(__file__).resolve().parents[3]
        / "shared"
        / "fixtures"
        / "external"
        / "ob3-1edtech"
        / "simple.json"
    ).read_bytes()
    with httpx.Client(
        base_url=site.url, follow_redirects=False, timeout=30, cookies={SESSION_COOKIE: cookie}
    ) as http:
        form = http.post(
            f"/attestations?csrf_token={csrf}",
            data={"csrf_token": csrf},
            files={"file": ("simple.json", example, "application/json")},
        )
        assert form.status_code == 303 and form.headers["location"].startswith("/attestations/"), form.text
        api = http.post(
            "/api/attestations",
            headers={"X-CSRF-Token": csrf},
            files={"file": ("simple.json", example, "application/json")},
        )
        assert api.status_code == 202, api.text
        page = http.get("/attestations")
        assert f'action="/attestations?csrf_token={csrf}"' in page.text.replace("&amp;", "&")
        # Other bodies are bounded too: a 2 MiB form to the language switch is cut with 413.
        big = http.post("/language", data={"csrf_token": csrf, "lang": "en", "pad": "x" * 2 * 1024 * 1024})
        assert big.status_code == 413


def test_outside_the_embedded_stack_metrics_and_the_api_description_are_not_public(site: Site) -> None:
    assert not site.settings.embedded
    with httpx.Client(base_url=site.url, follow_redirects=False, timeout=30) as stranger:
        assert stranger.get("/metrics").status_code == 404
        assert stranger.get("/redoc").status_code == 404
        for path in ("/docs", "/openapi.json"):
            answer = stranger.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/login"), path
    cookie, _csrf = logged_in(site)
    with httpx.Client(base_url=site.url, timeout=30, cookies={SESSION_COOKIE: cookie}) as learner:
        assert learner.get("/openapi.json").status_code == 403
    with httpx.Client(base_url=site.url, follow_redirects=False, timeout=30) as admin:
        token = CSRF_FIELD.search(admin.get("/login").text)
        assert token
        signed = admin.post("/login/dev", data={"csrf_token": token.group(1), "account": "admin"})
        assert signed.status_code == 303
        assert "/api/attestations" in admin.get("/openapi.json").json()["paths"]
        assert admin.get("/docs").status_code == 200

    # The metrics are on their own port (EBACKPACK_METRICS_PORT), which the runner opens.
    metrics_port = reserve_port()
    port = metrics_port.getsockname()[1]
    metrics_port.close()
    web_server(site.counter, site.settings.model_copy(update={"metrics_port": port}))  # not run: opens it
    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert 'ebackpack_http_requests_total{app="backpack"' in scraped


def hammer(port: int, path: str, count: int, forwarded: list[str] | None) -> list[int]:
    """`count` GETs of `path`, each with the next X-Forwarded-For of `forwarded` (when given)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        return [
            http.get(
                path,
                headers={"X-Forwarded-For": forwarded[n % len(forwarded)]} if forwarded else {},
                params={"format": "json"},
            ).status_code
            for n in range(count)
        ]


@pytest.mark.parametrize("path", ["/verify/AAAA-BBBB-CCCC", "/ob2/assertions/AAAA-BBBB-CCCC", "/s/nothing"])
def test_the_rate_limit_keys_on_the_peer_unless_it_is_a_trusted_proxy(site: Site, path: str) -> None:
    rotating = [f"203.0.113.{n}" for n in range(1, 200)]
    limited = site.settings.model_copy(update={"verify_rate_limit": "10/minute"})
    for proxies, expected in (("", "limited"), ("127.0.0.1", "per forwarded client")):
        behind = limited.model_copy(update={"trusted_proxies": proxies})
        sock = reserve_port()
        try:
            with Served(create_app(behind), behind, sock) as served:
                statuses = hammer(served.port, path, 30, rotating)
                if expected == "limited":  # rotating the header changes nothing: the peer is the client
                    assert statuses[:10] == [404] * 10 and set(statuses[10:]) == {429}, statuses
                else:  # a trusted proxy's header names the client: each has its own budget
                    assert 429 not in statuses, statuses
                    one = hammer(served.port, path, 11, ["198.51.100.7"])
                    assert one[-1] == 429 and 429 not in one[:10], one
        finally:
            sock.close()


def test_api_tokens_issued_before_the_revocation_time_are_refused(site: Site) -> None:
    """Learner API tokens are stored nowhere: EBACKPACK_API_TOKENS_NOT_BEFORE revokes every earlier one."""
    old = issue_token(site.settings, ALICE)
    issued = int(time.time())
    while int(time.time()) == issued:  # tokens carry whole seconds: the next one is issued a second later
        time.sleep(0.05)
    cut = datetime.now(UTC).replace(microsecond=0)  # in the new second, as tokens count time
    new = issue_token(site.settings, ALICE)
    revoking = site.settings.model_copy(update={"api_tokens_not_before": cut})
    sock = reserve_port()
    try:
        with Served(create_app(revoking), revoking, sock) as served, httpx.Client(timeout=30) as http:
            url = f"http://127.0.0.1:{served.port}/api/credentials"
            refused = http.get(url, headers={"Authorization": f"Bearer {old}"})
            assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
            assert http.get(url, headers={"Authorization": f"Bearer {new}"}).status_code == 200
    finally:
        sock.close()
    with httpx.Client(timeout=30) as http:  # without the setting the old one still works
        still = http.get(f"{site.url}/api/credentials", headers={"Authorization": f"Bearer {old}"})
        assert still.status_code == 200


def test_an_answer_given_before_the_body_is_read_closes_the_connection(site: Site) -> None:
    """`POST /healthz` is answered 405 without reading the body. The server then closes: it drops what
    the client goes on sending for LINGER_SECONDS at most (so that the client reads the answer), instead
    of reading and dropping a body of any length to keep the connection (uvicorn's own way)."""
    sock = socket.create_connection(("127.0.0.1", site.port), timeout=30)
    sock.sendall(
        f"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\nTransfer-Encoding: chunked\r\n"
        "Content-Type: application/octet-stream\r\n\r\n".encode()
    )
    chunk = f"{CHUNK:x}\r\n".encode() + b" " * CHUNK + b"\r\n"
    sock.sendall(chunk)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 405 ") and b"connection: close" in answer.lower()
    answered, closed = time.monotonic(), None
    try:
        while time.monotonic() - answered < 15:  # goes on sending, as a client that ignores the answer
            sock.sendall(chunk)
            time.sleep(0.01)  # the client's pace (about 6 MB/s), not an assertion
    except (BrokenPipeError, ConnectionResetError):
        closed = time.monotonic() - answered
    finally:
        sock.close()
    assert closed is not None and closed < LINGER_SECONDS + 3, closed
    print(f"closed {closed:.2f} s after answering, while the client kept sending")
