"""With strong secrets, every e-Backpack process starts in production mode (EBACKPACK_EMBEDDED=false) on a
real stack: the broker, the S3 server (whose key is itself a strong secret), and PostgreSQL through a
URL with a password. tests/integration/test_production_secrets.py shows the same processes refusing weak ones.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from ebackpack.config import Settings, settings_env
from ebackpack.dev.stack import free_port
from tests.builders import stop_group

pytestmark = pytest.mark.e2e
START_DEADLINE = 120.0  # seconds; two cores shared with other test runs


def cli() -> list[str]:
    script = Path(sys.executable).with_name("ebackpack")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ebackpack.cli"]


@pytest.fixture
def production(settings: Settings, postgres_url: str) -> Settings:
    password = secrets.token_urlsafe(48)
    database = make_url(postgres_url).set(password=password).render_as_string(hide_password=False)
    strong = settings.model_copy(
        update={"database_url": database, "gateway_secret": SecretStr(secrets.token_urlsafe(48))}
    )
    assert not strong.embedded and strong.production_secret_problems() == []
    return strong


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EBACKPACK_")}
    return env | settings_env(settings) | extra


@contextmanager
def running(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        stop_group(proc)


def wait_answering(url: str, proc: subprocess.Popen[bytes], log: Path) -> float:
    """Seconds until `url` answers 200; fails at once if the process exits."""
    started = time.monotonic()
    while time.monotonic() - started < START_DEADLINE:
        if proc.poll() is not None:
            pytest.fail(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} did not answer within {START_DEADLINE:.0f} s:\n{log.read_text()[-3000:]}")


def test_every_process_starts_with_strong_secrets(production: Settings, tmp_path: Path) -> None:
    env = environment(production)
    prepared = subprocess.run([*cli(), "prepare"], env=env, capture_output=True, text=True, timeout=180)
    assert prepared.returncode == 0, prepared.stderr
    token = subprocess.run(
        [*cli(), "learner-token", "5722"], env=env, capture_output=True, text=True, timeout=60
    )
    assert token.returncode == 0 and token.stdout.count(".") == 2, token.stderr
    export = tmp_path / "log.jsonl"
    export.write_text("")
    imported = subprocess.run(
        [*cli(), "gateway", "import", str(export)], env=env, capture_output=True, text=True, timeout=120
    )
    assert imported.returncode == 0, imported.stderr

    for args in (["serve"], ["gateway", "webhook"]):
        port = free_port()
        log = tmp_path / f"{args[-1]}.log"
        with running([*cli(), *args, "--port", str(port)], env, log) as proc:
            wait_answering(f"http://127.0.0.1:{port}/healthz", proc, log)

    for service in ("issuer", "renderer", "importer", "notifier"):
        port = free_port()
        log = tmp_path / f"{service}.log"
        with running(
            [*cli(), "worker", service], environment(production, EBACKPACK_METRICS_PORT=str(port)), log
        ) as proc:
            wait_answering(f"http://127.0.0.1:{port}/metrics", proc, log)
