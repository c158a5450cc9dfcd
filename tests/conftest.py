"""Shared fixtures: one embedded stack (real Tansu broker + real SeaweedFS S3) per test session,
isolated per test by topic prefix, bucket and database; PostgreSQL from the machine."""

from __future__ import annotations

import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from ebackpack.config import Settings
from ebackpack.stack import EmbeddedStack, free_port

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
# Hand-checked Moodle examples beside the project (read by tests only, never by the product).
MOODLE_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "moodle"


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package: see `make system-deps`)")
    return path


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    base = Settings(data_dir=tmp_path_factory.mktemp("stack"), embedded=False,
                    kafka_bootstrap=f"127.0.0.1:{free_port()}",
                    s3_endpoint=f"http://127.0.0.1:{free_port()}")
    stack = EmbeddedStack(base)
    stack.start()
    yield base
    stack.stop()


def reserve_port() -> socket.socket:
    """A bound listening socket: the port is ours until the web server takes the socket over.

    Verification URLs are printed into PDFs long before the web server starts; a port only chosen
    then could be taken by another process in between.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def isolated(base: Settings, tmp_path: Path, web: socket.socket) -> Settings:
    """Settings of one test: its own topics, bucket, database and data folder on the shared stack."""
    run = uuid.uuid4().hex[:8]
    port = web.getsockname()[1]
    return base.model_copy(update={
        "data_dir": tmp_path / "data", "topic_prefix": f"t{run}.", "s3_bucket": f"test-{run}",
        "database_url": f"sqlite:///{tmp_path / 'ebackpack.db'}",
        "http_port": port, "public_url": f"http://127.0.0.1:{port}",
    })


@pytest.fixture
def web_socket() -> Iterator[socket.socket]:
    sock = reserve_port()
    yield sock
    sock.close()


@pytest.fixture
def settings(stack_settings: Settings, tmp_path: Path, web_socket: socket.socket) -> Settings:
    return isolated(stack_settings, tmp_path, web_socket)


def _pg_reachable() -> bool:
    import psycopg

    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
        return True
    except psycopg.OperationalError:
        return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway database on the machine's PostgreSQL."""
    import psycopg

    if not _pg_reachable():
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    name = f"ebackpack_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ebackpack.db'}"
    return str(request.getfixturevalue("postgres_url"))


class WebServer:
    """The backpack web app served by uvicorn in a thread, on the socket reserved for it."""

    def __init__(self, settings: Settings, sock: socket.socket):
        from services.backpack.app import create_app

        config = uvicorn.Config(create_app(settings), log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.url = settings.public_url

    def __enter__(self) -> WebServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).json().get("service") == "ebackpack":
                    return self
            except (httpx.HTTPError, ValueError):
                time.sleep(0.1)
        raise RuntimeError("web server did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
