"""Shared fixtures: one stack per test session, isolated per test by topic prefix, bucket and database.

The stack is the embedded one (real Tansu broker + real SeaweedFS S3, PostgreSQL from the machine), or,
with EBACKPACK_TEST_CONTAINERS=1 where a Docker engine answers, Apache Kafka, MinIO and PostgreSQL in
containers (testcontainers). The same tests run on both.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import uvicorn

from ebackpack.config import Settings
from ebackpack.dev.stack import EmbeddedStack, free_port
from ebackpack.secret_policy import throwaway_secrets

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
# Hand-checked Moodle examples beside the project (read by tests only, never by the product).
MOODLE_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "moodle"


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package: see `make system-deps`)")
    return path


CONTAINERS_VARIABLE = "EBACKPACK_TEST_CONTAINERS"
# testcontainers' KafkaContainer drives Confluent's images (Apache Kafka inside); KRaft needs >= 7.0.
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
MINIO_IMAGE = "quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z"  # the one docker-compose.yml runs
POSTGRES_IMAGE = "postgres:16"


def docker_reachable() -> bool:
    """Whether a Docker engine answers (DOCKER_HOST or the default socket)."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no socket, no permission, no engine: all mean "no Docker here"
        return False


def choose_test_stack(
    docker_probe: Callable[[], bool], environ: Mapping[str, str] = os.environ
) -> Literal["containers", "embedded"]:
    """Containers when asked for (EBACKPACK_TEST_CONTAINERS=1) and Docker answers; else the embedded stack."""
    if environ.get(CONTAINERS_VARIABLE) == "1" and docker_probe():
        return "containers"
    return "embedded"


@functools.cache
def _stack_kind() -> Literal["containers", "embedded"]:
    return choose_test_stack(docker_reachable)


def _container_class(module: str, name: str) -> Any:
    """A testcontainers class: `testcontainers.community.<module>` in newer 4.x, `testcontainers.<module>`
    before (still there, deprecated)."""
    try:
        return getattr(importlib.import_module(f"testcontainers.community.{module}"), name)
    except ModuleNotFoundError as error:
        if error.name is None or not error.name.startswith("testcontainers"):
            raise  # a missing client library (e.g. `minio`), not the older layout
        return getattr(importlib.import_module(f"testcontainers.{module}"), name)


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    data_dir = tmp_path_factory.mktemp("stack")
    if _stack_kind() == "containers":
        with ExitStack() as started:
            kafka = _container_class("kafka", "KafkaContainer")(KAFKA_IMAGE).with_kraft().start(timeout=180)
            started.callback(kafka.stop)
            minio = _container_class("minio", "MinioContainer")(
                MINIO_IMAGE, access_key="ebackpack", secret_key=throwaway_secrets()["s3_secret_key"]
            )
            # Newer MinIO reads the root credentials from these (the class sets the older names).
            minio.with_env("MINIO_ROOT_USER", minio.access_key)
            minio.with_env("MINIO_ROOT_PASSWORD", minio.secret_key)
            started.enter_context(minio)
            yield Settings(
                data_dir=data_dir,
                embedded=False,
                kafka_bootstrap=kafka.get_bootstrap_server(),
                s3_endpoint=f"http://{minio.get_config()['endpoint']}",
                s3_access_key=minio.access_key,
                s3_secret_key=minio.secret_key,
                code_secret=throwaway_secrets()["code_secret"],
            )
        return
    # Processes run as in production (EMBEDDED=false), which refuses the published default secrets.
    base = Settings(
        data_dir=data_dir,
        embedded=False,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        s3_endpoint=f"http://127.0.0.1:{free_port()}",
        **throwaway_secrets(),
    )
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
    return base.model_copy(
        update={
            "data_dir": tmp_path / "data",
            "topic_prefix": f"t{run}.",
            "s3_bucket": f"test-{run}",
            "database_url": f"sqlite:///{tmp_path / 'ebackpack.db'}",
            "http_port": port,
            "public_url": f"http://127.0.0.1:{port}",
        }
    )


@pytest.fixture
def web_socket() -> Iterator[socket.socket]:
    sock = reserve_port()
    yield sock
    sock.close()


@pytest.fixture
def settings(stack_settings: Settings, tmp_path: Path, web_socket: socket.socket) -> Settings:
    return isolated(stack_settings, tmp_path, web_socket)


def _pg_reachable(admin_url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(admin_url, connect_timeout=3).close()
        return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A PostgreSQL URL (libpq form) allowed to create databases: the container's, or the machine's."""
    if _stack_kind() == "containers":
        # A strong password: processes in production mode refuse a short one in the database URL.
        with _container_class("postgres", "PostgresContainer")(
            POSTGRES_IMAGE, driver=None, password=throwaway_secrets()["code_secret"]
        ) as postgres:
            yield postgres.get_connection_url()
    else:
        yield PG_ADMIN_URL


@pytest.fixture
def postgres_url(pg_admin_url: str) -> Iterator[str]:
    """A throwaway database on that PostgreSQL (SQLAlchemy URL, psycopg driver)."""
    import psycopg
    from sqlalchemy.engine import make_url

    if not _pg_reachable(pg_admin_url):
        pytest.skip(f"PostgreSQL not reachable at {pg_admin_url}")
    name = f"ebackpack_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield (
        make_url(pg_admin_url)
        .set(drivername="postgresql+psycopg", database=name)
        .render_as_string(hide_password=False)
    )
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ebackpack.db'}"
    return str(request.getfixturevalue("postgres_url"))


class WebServer:
    """The backpack web app served by uvicorn in a thread, on the socket reserved for it."""

    def __init__(self, settings: Settings, sock: socket.socket):
        from ebackpack.adapters.webserver import server_config
        from services.backpack.app import create_app

        # As `ebackpack serve` runs it: header timeout, connection limit, no forwarded headers trusted.
        host, port = sock.getsockname()[:2]
        config = server_config(create_app(settings), settings, host, port, log_level="warning")
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
