"""Requests per second of the public verification page under load, against nginx serving a file of the
same size in the same run, and a static file of the same server.

    .venv/bin/python bench/web_benchmark.py [--duration S] [--warmup W] [--threads T] [--connections C]
                                            [--workers N] [--no-access-log] [--no-nginx] [--no-uncached]
                                            [--calls N] [--json] [--keep]

Set-up (not timed): a SQLite database in a temporary folder, migrated, with the sample learner profiles
and the awards the issuer's service layer (`IssuerService.handle`) makes of the sample Moodle events
(`default_dataset()`; its malformed messages are skipped), signed as the issuer signs them. Every award
that asks for a certificate gets one `certificates` row, as the renderer would store it (no PDF is
made: the page only shows its version and SHA-256), so the verification page is the one a certificate's
QR code opens. Then the backpack web server in its own process on 127.0.0.1 and a free port, as
`ebackpack serve` runs it (`ebackpack.adapters.webserver.web_server`: uvicorn with the project's h11
protocol, header timeout and connection limit; one process; access log on, to a file in the temporary
folder), unless `--no-access-log` says otherwise; with `--workers N` (N > 1) uvicorn's own CLI with that
many worker processes instead. Its environment has `EBACKPACK_*` pointing at that database and folder,
and `EBACKPACK_VERIFY_RATE_LIMIT=1000000/minute`, so the per-address limit of the verification pages
never answers 429 to a benchmark that sends every request from one address (the limiter's own
bookkeeping still runs and is part of the figures). The page's cache has its default bound
(`EBACKPACK_VERIFY_CACHE_SECONDS`, 60 s): after the first request every answer comes from it.

What is timed: Debian's `wrk --latency` (a separate process, T threads, C keep-alive connections, on the
same machine and cores as the server) for S seconds per URL, after a warm-up of W seconds that is not
counted, one URL after another:

nginx          GET /same-size.html             the anchor: Debian's nginx, one process (no master, one
                                               worker), access log on, serving a file with the bytes of
                                               the verify-html answer (`--no-nginx`: no such row)
verify-html    GET /verify/<code>              the page a certificate's QR code opens (HTML)
verify-json    GET /verify/<code>?format=json  the same verification as JSON
verify-304     GET /verify/<code>, If-None-Match: the page's ETag: what a browser or CDN revalidating
                                               its copy gets (304, no body)
static         GET /static/app.css             a file served by the same app (StaticFiles); when that
                                               does not answer 200 (no static mount yet: 404), GET
                                               /healthz instead, and the run says so
verify-nocache GET /verify/<code>              a second server, EBACKPACK_VERIFY_CACHE_SECONDS=0: every
                                               request reads the database and renders the page (what a
                                               code not asked for in the last minute costs;
                                               `--no-uncached`: no such row)

wrk gives requests/s, the latency distribution (p50, p90, p99) and responses that were not 2xx or 3xx
(its own count); the CPU time the server process and wrk used during the timed run comes from
/proc/<pid>/stat and getrusage, and what the rest of the machine used (other work skews the figures)
from /proc/stat. Each row's requests/s is also shown as a ratio to the static row's and to nginx's, and
the ratio of verify-html to nginx is printed on its own line.
Finally, in this process and without HTTP or uvicorn, one request at a time, the mean of `--calls`
calls each: the same app (`create_app`, same settings) called through ASGI (httpx's `ASGITransport`)
for each URL and for /healthz (a sync endpoint with no work of its own: the cost of the middleware
stack and routing); then `verify()` alone, with its SQL statements counted; then the endpoint's
`render()` of verify.html alone, for a visitor without cookies (these two are what a cache miss adds).

Progress goes to stderr; the table goes to stdout, or to stderr when `--json` puts one JSON object on
stdout. The servers are stopped at the end, on errors, Ctrl-C and SIGTERM. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
from common import LOAD_BEFORE, BenchError, exit_on_sigterm
from common import say as log
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.persistence.engine import make_engine, migrate, session_factory
from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow
from ebackpack.config import Settings
from ebackpack.dev.sample_data import default_dataset
from ebackpack.domain.rules import load_rules
from ebackpack.streaming.errors import InvalidMessage
from services.gateway.profiles import store_profiles
from services.issuer.service import IssuerService

PROJECT = Path(__file__).resolve().parents[1]
TEMPLATES_DIR = PROJECT / "services" / "backpack" / "templates"

WRK = "wrk"
NGINX = "nginx"
NGINX_PATHS = ("/usr/sbin/nginx",)
RATE_LIMIT = "1000000/minute"
STATIC_PATH = "/static/app.css"
FALLBACK_PATH = "/healthz"
SERVER_START_TIMEOUT = 30.0  # seconds for uvicorn to answer /healthz
CLK_TCK = os.sysconf("SC_CLK_TCK")
TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


# --- the database -------------------------------------------------------------------------------------


def settings_for(work: Path, port: int) -> Settings:
    """The same as the server's environment gives it (no .env file read)."""
    return Settings(
        _env_file=None,
        data_dir=work / "data",
        database_url=f"sqlite:///{work / 'ebackpack.db'}",
        http_port=port,
        public_url=f"http://127.0.0.1:{port}",
        verify_rate_limit=RATE_LIMIT,
    )


def issue_sample(settings: Settings) -> tuple[int, int]:
    """The sample's awards through the issuer's service layer, and one certificate row for each award
    that asks for a certificate; returns (awards, certificate rows)."""
    migrate(settings.db_url)
    sessions = session_factory(make_engine(settings.db_url))
    store_profiles(sessions, default_dataset().profiles)
    service = IssuerService(sessions, load_rules(settings.rules_file), settings)
    certified: set[str] = set()
    for _key, value in default_dataset().messages:
        try:
            rows = service.handle(value)
        except InvalidMessage:
            continue  # the sample's malformed messages
        certified |= {row.credential_id for row in rows if row.topic.endswith("certificates.render")}
    with sessions.begin() as session:
        for credential_id in sorted(certified):
            pdf = f"certificate of {credential_id}".encode()  # stands in for the PDF: only its hash shows
            digest = hashlib.sha256(pdf).hexdigest()
            session.add(
                CertificateRow(
                    credential_id=credential_id,
                    bucket=settings.s3_bucket,
                    object_key=f"certificates/{credential_id}/{digest}.pdf",
                    sha256=digest,
                    size=len(pdf),
                    template="default",
                    rendered_at=datetime.now(UTC),
                )
            )
        awards = session.query(AwardRow).count()
    return awards, len(certified)


def pick_code(settings: Settings) -> str:
    """A valid award's code, one with a certificate: what a printed QR code leads to."""
    sessions = session_factory(make_engine(settings.db_url))
    with sessions() as session:
        with_certificate = CertificateRow.credential_id == AwardRow.credential_id
        award = (
            session.query(AwardRow)
            .join(CertificateRow, with_certificate)
            .filter(AwardRow.status == "issued")
            .order_by(AwardRow.credential_id)
            .first()
        )
        if award is None:
            award = session.query(AwardRow).order_by(AwardRow.credential_id).first()
        if award is None:
            raise BenchError("the sample data issued no award")
        return award.verification_code


# --- the server ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EBACKPACK_")}
    env.update(
        {
            "EBACKPACK_DATA_DIR": str(settings.data_dir),
            "EBACKPACK_DATABASE_URL": settings.db_url,
            "EBACKPACK_HTTP_PORT": str(settings.http_port),
            "EBACKPACK_PUBLIC_URL": settings.public_url,
            "EBACKPACK_VERIFY_RATE_LIMIT": RATE_LIMIT,
            "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT), os.environ.get("PYTHONPATH")) if p),
        }
    )
    return env


# What `ebackpack serve` runs (ebackpack.adapters.webserver: uvicorn with the project's own h11 protocol,
# header timeout, connection limit), with the access log on or off as the first argument says.
SERVE = (
    "import sys; from ebackpack.adapters.webserver import web_server; from ebackpack.config import "
    "get_settings; from services.backpack.app import create_app; settings = get_settings(); "
    "web_server(create_app(settings), settings, access_log=sys.argv[1] == 'on').run()"
)


@contextmanager
def web_server(
    settings: Settings,
    work: Path,
    access_log: bool,
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """The web server in its own process (and session: only we stop it), until the block ends: one
    process as `ebackpack serve` runs it, or uvicorn's own CLI with `--workers N` (N > 1)."""
    if workers == 1:
        command = [sys.executable, "-c", SERVE, "on" if access_log else "off"]
    else:  # a supervisor and that many worker processes, each with its own rate-limit count and cache
        command = [sys.executable, "-m", "uvicorn", "--factory", "services.backpack.app:create_app"]
        command += ["--host", "127.0.0.1", "--port", str(settings.http_port), "--workers", str(workers)]
        if not access_log:
            command.append("--no-access-log")
    log_path = work / f"server-{settings.http_port}.log"
    with log_path.open("wb") as log_file:
        # cwd: the work folder, so no .env of the project's checkout is read.
        server = subprocess.Popen(
            command,
            cwd=work,
            env=server_env(settings) | (extra_env or {}),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_up(server, settings.public_url + "/healthz", log_path, "ebackpack serve")
        yield server
    finally:
        stop(server)
        log(f"server stopped (exit {server.returncode})")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- nginx: the anchor ---------------------------------------------------------------------------------

NGINX_CONF = """daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log {work}/nginx-access.log;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    keepalive_requests 1000000;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        root {work}/www;
        default_type text/html;
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which(NGINX) or next((p for p in NGINX_PATHS if Path(p).exists()), None)


@contextmanager
def nginx(work: Path, body: bytes) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Debian's nginx in one process (like the app: no master, one worker), access log on, serving a
    file of `body`'s bytes; yields the process and the file's URL."""
    binary = nginx_binary()
    if binary is None:
        raise BenchError("nginx is not installed (Debian: apt-get install nginx-light)")
    (work / "www").mkdir(exist_ok=True)
    (work / "www" / "same-size.html").write_bytes(body)
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=work, port=port))
    base = f"http://127.0.0.1:{port}"
    with (work / "nginx.log").open("wb") as log_file:
        server = subprocess.Popen(
            [binary, "-c", str(conf), "-p", str(work)],
            cwd=work,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_up(server, base + "/same-size.html", work / "nginx-error.log", "nginx")
        yield server, base
    finally:
        stop(server)
        log(f"nginx stopped (exit {server.returncode})")


def wait_until_up(server: subprocess.Popen[bytes], url: str, log_path: Path, name: str) -> None:
    """Until `url` answers 200; a BenchError with the log's tail if the server exits or stays silent."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise BenchError(f"{name} exited with {server.returncode}:\n{tail}")
        try:
            if get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{name} did not answer {url} within {SERVER_START_TIMEOUT:.0f} s")


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, int]:
    """(status, content type, body length) of one GET."""
    status, response_headers, body = fetch(url, headers)
    return status, response_headers.get("content-type", ""), len(body)


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    """(status, headers, body) of one GET."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers or {}), timeout=5
        ) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process (all its threads) and of its living descendants
    (uvicorn's worker processes with `--workers`)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK + sum(cpu_seconds(child) for child in children(pid))


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(n) for n in (task / "children").read_text().split()}
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy so far (everything but idle and iowait, /proc/stat)."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / CLK_TCK


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- wrk ----------------------------------------------------------------------------------------------


@dataclass
class Target:
    key: str
    path: str
    what: str
    headers: dict[str, str] | None = None  # sent with every request (If-None-Match)
    expect: int = 200  # the status of one GET before the load


@dataclass
class Row:
    key: str
    path: str
    what: str
    status: int  # of one GET before the load
    content_type: str
    body_bytes: int
    requests: int
    seconds: float
    requests_per_second: float
    latency_ms: dict[str, float]  # avg, max, p50, p75, p90, p99
    non_2xx_3xx: int
    socket_errors: dict[str, int]
    transfer_per_second: str
    server_cpu: float  # CPU seconds of the server process / wall seconds of the run (1.0 = one core)
    server_cpu_ms_per_request: float  # CPU milliseconds of the server process / requests
    wrk_cpu: float
    other_cpu: float  # the rest of the machine's busy CPU (this script, other work) during the run
    headers: dict[str, str] | None = None  # sent with every request
    server: str = "app"  # "app", "app, no cache" or "nginx"
    ratio_to_static: float | None = None
    ratio_to_nginx: float | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def to_ms(value: str, unit: str) -> float:
    return float(value) * TIME_UNITS_MS[unit]


def parse_wrk(output: str) -> dict[str, Any]:
    """The figures of `wrk --latency`'s report."""

    def need(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise BenchError(f"wrk's output has no match for {pattern!r}:\n{output}")
        return match

    unit = r"(us|ms|s|m|h)"
    stats = need(rf"^\s*Latency\s+([\d.]+){unit}\s+([\d.]+){unit}\s+([\d.]+){unit}")
    latency = {"avg": to_ms(stats[1], stats[2]), "max": to_ms(stats[5], stats[6])}
    need(r"^\s*Latency Distribution")
    for pct in ("50", "75", "90", "99"):
        match = need(rf"^\s+{pct}%\s+([\d.]+){unit}\s*$")
        latency[f"p{pct}"] = to_ms(match[1], match[2])
    done = need(rf"^\s*(\d+) requests in ([\d.]+){unit}, ([\d.]+\w*) read")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_ok = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests": int(done[1]),
        "seconds": to_ms(done[2], done[3]) / 1000,
        "requests_per_second": float(need(r"^Requests/sec:\s+([\d.]+)")[1]),
        "latency_ms": {k: round(v, 3) for k, v in latency.items()},
        "non_2xx_3xx": int(non_ok[1]) if non_ok else 0,
        "socket_errors": dict(
            zip(("connect", "read", "write", "timeout"), (int(n) for n in errors.groups()), strict=True)
        )
        if errors
        else {"connect": 0, "read": 0, "write": 0, "timeout": 0},
        "transfer_per_second": need(r"^Transfer/sec:\s+(\S+)")[1],
    }


def wrk(url: str, seconds: int, threads: int, connections: int, headers: dict[str, str] | None = None) -> str:
    command = [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    for name, value in (headers or {}).items():
        command[1:1] = ["-H", f"{name}: {value}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if result.returncode != 0:
        raise BenchError(f"{' '.join(command)} exited with {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def load(
    server: subprocess.Popen[bytes], base: str, target: Target, args: argparse.Namespace, kind: str = "app"
) -> Row:
    url = base + target.path
    status, content_type, size = get(url, target.headers)
    if status != target.expect:
        raise BenchError(f"GET {target.path} answered {status} before the load, not {target.expect}")
    log(f"{target.key}: GET {target.path} ({content_type}, {size} bytes): warm-up {args.warmup} s")
    if args.warmup > 0:
        wrk(url, args.warmup, args.threads, args.connections, target.headers)
    log(f"{target.key}: {args.duration} s, {args.threads} threads, {args.connections} connections")
    server_before, wrk_before = cpu_seconds(server.pid), children_cpu_seconds()
    busy_before, started = machine_busy_seconds(), time.monotonic()
    output = wrk(url, args.duration, args.threads, args.connections, target.headers)
    wall = time.monotonic() - started
    busy = machine_busy_seconds() - busy_before
    server_seconds, wrk_seconds = cpu_seconds(server.pid) - server_before, children_cpu_seconds() - wrk_before
    figures = parse_wrk(output)
    row = Row(
        key=target.key,
        path=target.path,
        what=target.what,
        status=status,
        content_type=content_type,
        body_bytes=size,
        **figures,
        server_cpu=round(server_seconds / wall, 2),
        server_cpu_ms_per_request=round(1000 * server_seconds / max(figures["requests"], 1), 3),
        wrk_cpu=round(wrk_seconds / wall, 2),
        other_cpu=round(max(busy - server_seconds - wrk_seconds, 0.0) / wall, 2),
        headers=target.headers,
        server=kind,
    )
    log(f"{target.key}: {row.requests_per_second:.0f} requests/s, p99 {row.latency_ms['p99']:.1f} ms")
    return row


def static_target(base: str) -> tuple[Target, str | None]:
    """The static file, or /healthz when the server has none (and why)."""
    status = get(base + STATIC_PATH)[0]
    if status == 200:
        return Target("static", STATIC_PATH, "static file (StaticFiles)"), None
    note = f"GET {STATIC_PATH} answered {status}: the static row is GET {FALLBACK_PATH} instead"
    log(note)
    return Target("static", FALLBACK_PATH, "health check (JSON), no static file"), note


# --- the parts of one request, in this process ---------------------------------------------------------


def time_calls(call: Callable[[], object], count: int) -> float:
    """Milliseconds per call, after one warm-up call."""
    call()
    started = time.perf_counter()
    for _ in range(count):
        call()
    return 1000 * (time.perf_counter() - started) / count


def request_parts(settings: Settings, code: str, targets: Sequence[Target], count: int) -> dict[str, Any]:
    """What one request costs in this process, without HTTP and uvicorn: the whole app through ASGI,
    then `verify()` alone (its SQL statements counted) and the verification page's rendering alone."""
    from starlette.requests import Request

    from services.backpack.app import create_app
    from services.backpack.verification import Verification, verify
    from services.backpack.web import render

    app = create_app(settings)
    engine = make_engine(settings.db_url)
    sessions: sessionmaker[Session] = session_factory(engine)
    statements = 0

    def count_statement(*_args: object) -> None:
        nonlocal statements
        statements += 1

    def lookup() -> Verification:
        with sessions() as session:
            return verify(session, code)

    result = lookup()
    event.listen(engine, "before_cursor_execute", count_statement)
    lookup()
    event.remove(engine, "before_cursor_execute", count_statement)
    page_path = f"/verify/{code}"

    def page() -> bytes:
        """The endpoint's `render()` of verify.html, for a visitor without cookies, as wrk is."""
        scope = {
            "type": "http",
            "method": "GET",
            "path": page_path,
            "raw_path": page_path.encode(),
            "query_string": b"",
            "headers": [],
            "scheme": "http",
            "root_path": "",
            "session": {},
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", settings.http_port),
            "app": app,
            "router": app.router,
        }
        return bytes(
            render(Request(scope), "verify.html", 200, v=result, issuer=app.state.rules.issuer.name).body
        )

    parts = {
        "asgi_ms": asyncio.run(over_asgi(app, with_baseline(targets), count)),
        "sql_statements_per_verify": statements,
        "verify_ms": round(time_calls(lookup, count), 4),
        "render_html_ms": round(time_calls(page, count), 4),
        "calls": count,
    }
    engine.dispose()
    return parts


def with_baseline(targets: Sequence[Target]) -> list[Target]:
    """The targets and /healthz: a sync endpoint behind the same middleware, with no work of its own."""
    if any(target.path == FALLBACK_PATH for target in targets):
        return list(targets)
    return [*targets, Target("healthz", FALLBACK_PATH, "health check (JSON)")]


async def over_asgi(app: Any, targets: Sequence[Target], count: int) -> dict[str, dict[str, float]]:
    """Per URL, milliseconds per request of the app called through ASGI (httpx's ASGITransport, no
    cookies kept, as with wrk), one request after another, after one warm-up request: wall clock, and
    CPU time of this process (all threads: sync endpoints and file reads run in anyio's thread pool,
    whose hand-offs cost wall time, not CPU, and overlap under concurrent load)."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    times: dict[str, dict[str, float]] = {}
    for target in targets:
        request = httpx.Request("GET", f"http://127.0.0.1{target.path}")

        async def call(request: httpx.Request = request) -> int:
            response = await transport.handle_async_request(request)
            await response.aread()
            return response.status_code

        if (status := await call()) != 200:
            raise BenchError(f"GET {target.path} through ASGI answered {status}")
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            await call()
        times[target.key] = {
            "wall": round(1000 * (time.perf_counter() - started) / count, 4),
            "cpu": round(1000 * (time.process_time() - cpu) / count, 4),
        }
    return times


# --- report -------------------------------------------------------------------------------------------


def machine(workers: int) -> dict[str, Any]:
    wrk_version = subprocess.run([WRK, "-v"], capture_output=True, text=True, check=False).stdout.split()
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "uvicorn": version("uvicorn"),
        "fastapi": version("fastapi"),
        "sqlite": sqlite3.sqlite_version,
        "wrk": wrk_version[1] if len(wrk_version) > 1 else "?",
        "http_parser": "h11 (ebackpack serve's protocol)"
        if workers == 1
        else ("httptools" if importlib.util.find_spec("httptools") else "h11"),
        "nginx": nginx_version(),
        "event_loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "load_average_before": round(LOAD_BEFORE, 2),
    }


def nginx_version() -> str:
    binary = nginx_binary()
    if binary is None:
        return "-"
    answer = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False).stderr
    return answer.strip().rsplit("/", 1)[-1] or "?"


def server_processes(workers: int) -> str:
    return "one process as `ebackpack serve`" if workers == 1 else f"uvicorn with {workers} worker processes"


def table(report: dict[str, Any]) -> str:
    m, o = report["machine"], report["options"]
    lines = [
        f"verification page benchmark: {m['cpus']} CPUs, Python {m['python']}, uvicorn {m['uvicorn']} "
        f"({m['http_parser']}, {m['event_loop']}), FastAPI {m['fastapi']}, SQLite {m['sqlite']}, "
        f"wrk {m['wrk']}",
        f"run took {report['run_seconds']:.0f} s; load average before it {m['load_average_before']}; "
        f"{report['awards']} awards, {report['certificates']} with a certificate row; "
        f"code {report['code']}",
        f"wrk: {o['threads']} threads, {o['connections']} connections, {o['duration']} s per URL after "
        f"{o['warmup']} s warm-up; {server_processes(o['workers'])}, access log "
        f"{'on' if o['access_log'] else 'off'}, EBACKPACK_VERIFY_CACHE_SECONDS={o['verify_cache_seconds']}; "
        f"nginx {m['nginx']}: one process, access log on",
        "",
        f"{'':15}{'requests/s':>11}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'non-2xx':>8}"
        f"{'server CPU':>11}{'ms/req':>8}{'wrk CPU':>8}{'other':>6}{'vs static':>10}{'vs nginx':>9}",
    ]
    for row in report["rows"]:
        lat = row["latency_ms"]
        ratio = f"x{row['ratio_to_static']:.2f}" if row["ratio_to_static"] is not None else "-"
        to_nginx = f"x{row['ratio_to_nginx']:.3f}" if row["ratio_to_nginx"] is not None else "-"
        lines.append(
            f"{row['key']:15}{row['requests_per_second']:>11.1f}{lat['p50']:>8.2f}{lat['p90']:>8.2f}"
            f"{lat['p99']:>8.2f}{row['non_2xx_3xx']:>8}{row['server_cpu']:>11.2f}"
            f"{row['server_cpu_ms_per_request']:>8.3f}{row['wrk_cpu']:>8.2f}{row['other_cpu']:>6.2f}"
            f"{ratio:>10}{to_nginx:>9}"
        )
        errors = sum(row["socket_errors"].values())
        kind = row["content_type"].split(";")[0] or "no body"
        sent = "".join(f", {name}: {value}" for name, value in (row["headers"] or {}).items())
        lines.append(
            f"{'':15}{row['status']} to GET {row['path'][:48]}{sent} ({kind}, {row['body_bytes']} bytes); "
            f"{row['requests']} requests" + (f"; socket errors {row['socket_errors']}" if errors else "")
        )
    html = next((row for row in report["rows"] if row["key"] == "verify-html"), None)
    if html is not None and html["ratio_to_nginx"] is not None:
        lines += [
            "",
            f"verify-html / nginx (same size, same run): {html['ratio_to_nginx']:.3f} "
            f"(1 : {1 / html['ratio_to_nginx']:.1f})",
        ]
    if report["static_note"]:
        lines += ["", report["static_note"]]
    lines += [
        "",
        "server CPU, wrk CPU, other: CPU seconds per wall second of the timed run (1.00 = one "
        "core), other = the rest",
        "of the machine (this script, other work); ms/req: the server's CPU milliseconds per request;",
        "non-2xx: wrk's count of responses neither 2xx nor 3xx",
    ]
    p = report["parts"]
    lines += ["", f"one request in this process, without HTTP (mean of {p['calls']} calls, one at a time):"]
    lines += [
        f"  {key:11} through ASGI: {ms['wall']:>6.3f} ms, CPU {ms['cpu']:.3f} ms"
        for key, ms in p["asgi_ms"].items()
    ]
    lines += [
        f"  verify(), {p['sql_statements_per_verify']} SQL statements: {p['verify_ms']:>6.3f} ms",
        f"  render() of verify.html:   {p['render_html_ms']:>6.3f} ms",
    ]
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    started = time.monotonic()
    settings = settings_for(work, free_port())
    log("issuing the sample's awards into a new SQLite database")
    awards, certificates = issue_sample(settings)
    code = pick_code(settings)
    log(f"{awards} awards, {certificates} certificate rows; verification code {code}")
    rows: list[Row] = []
    page_path = f"/verify/{code}"
    with web_server(settings, work, args.access_log, args.workers) as server:
        base = settings.public_url
        log(f"the web server (pid {server.pid}) answers on {base}")
        _status, headers, page = fetch(base + page_path)
        static, static_note = static_target(base)
        targets = [
            Target("verify-html", page_path, "verification page (HTML)"),
            Target("verify-json", f"{page_path}?format=json", "verification (JSON)"),
            static,
        ]
        if etag := headers.get("etag"):  # (an app from before the page had one: no such row)
            revalidated = "the page revalidated (If-None-Match: its ETag)"
            targets.insert(2, Target("verify-304", page_path, revalidated, {"If-None-Match": etag}, 304))
        for target in targets:
            rows.append(load(server, base, target, args))
    if args.nginx:
        with nginx(work, page) as (server, base):
            log(f"nginx (pid {server.pid}) serves a file of {len(page)} bytes on {base}")
            anchor = Target("nginx", "/same-size.html", "nginx: a file of the verification page's size")
            rows.insert(0, load(server, base, anchor, args, "nginx"))
    if args.uncached:
        uncached = settings_for(work, free_port())
        no_cache = {"EBACKPACK_VERIFY_CACHE_SECONDS": "0"}
        with web_server(uncached, work, args.access_log, args.workers, no_cache) as server:
            log(f"the web server without its cache (pid {server.pid}) answers on {uncached.public_url}")
            what = "the page with EBACKPACK_VERIFY_CACHE_SECONDS=0: every request reads the database"
            target = Target("verify-nocache", page_path, what)
            rows.append(load(server, uncached.public_url, target, args, "app, no cache"))
    static_rps = next(row.requests_per_second for row in rows if row.key == "static")
    nginx_rps = next((row.requests_per_second for row in rows if row.key == "nginx"), 0.0)
    for row in rows:
        row.ratio_to_static = round(row.requests_per_second / static_rps, 3) if static_rps > 0 else None
        row.ratio_to_nginx = round(row.requests_per_second / nginx_rps, 4) if nginx_rps > 0 else None
    log("timing one request's parts in this process")
    parts = request_parts(settings, code, [t for t in targets if t.expect == 200], args.calls)
    return {
        "machine": machine(args.workers),
        "code": code,
        "awards": awards,
        "certificates": certificates,
        "options": {
            "duration": args.duration,
            "warmup": args.warmup,
            "threads": args.threads,
            "connections": args.connections,
            "access_log": args.access_log,
            "workers": args.workers,
            "rate_limit": RATE_LIMIT,
            "verify_cache_seconds": settings.verify_cache_seconds,
        },
        "static_note": static_note,
        "rows": [row.as_json() for row in rows],
        "parts": parts,
        "run_seconds": round(time.monotonic() - started, 1),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per URL (default 10)")
    parser.add_argument(
        "--warmup", type=int, default=3, help="seconds of warm-up per URL, not counted (default 3; 0: none)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes (default 1, as `ebackpack serve`)"
    )
    parser.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="run uvicorn without its access log (on by default, as `ebackpack serve`)",
    )
    parser.add_argument(
        "--calls",
        type=int,
        default=2000,
        help="calls per part of a request timed in this process (default 2000)",
    )
    parser.add_argument(
        "--no-nginx", dest="nginx", action="store_false", help="without the nginx row (the anchor)"
    )
    parser.add_argument(
        "--no-uncached",
        dest="uncached",
        action="store_false",
        help="without the row of a second server that keeps no cache (EBACKPACK_VERIFY_CACHE_SECONDS=0)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout, the table on stderr")
    parser.add_argument("--keep", action="store_true", help="keep the database and the server's log")
    args = parser.parse_args(argv)
    if min(args.duration, args.threads, args.calls, args.workers) < 1 or args.warmup < 0:
        parser.error("--duration, --threads, --calls and --workers must be at least 1, --warmup at least 0")
    if args.connections < args.threads:
        parser.error("wrk needs at least one connection per thread")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which(WRK) is None:
        log("wrk is not installed (Debian: apt-get install wrk)")
        return 2
    if args.nginx and nginx_binary() is None:
        log("nginx is not installed (Debian: apt-get install nginx-light), or run with --no-nginx")
        return 2
    previous = signal.signal(signal.SIGTERM, exit_on_sigterm)
    work = Path(tempfile.mkdtemp(prefix="web-bench-"))
    try:
        report = run(args, work)
    except BenchError as error:
        log(f"error: {error}")
        return 2
    except KeyboardInterrupt:
        log("interrupted; the server was stopped")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(table(report), file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
