"""`ebackpack stack up` / `stack down` as an operator runs them (the real CLI in a subprocess), and the
modes of the private files the stack and the database leave in the data directory."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer
from sqlalchemy import text

from ebackpack.adapters.persistence.engine import make_engine, migrate
from ebackpack.adapters.storage import ObjectStore
from ebackpack.config import Settings
from ebackpack.dev.stack import free_port
from ebackpack.dev.workers import Worker
from ebackpack.streaming.app import make_app

pytestmark = pytest.mark.integration


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ebackpack.cli", *args], env=env, capture_output=True, text=True, timeout=180
    )


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    """Runs (a zombie left to its parent counts as gone)."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except FileNotFoundError:
        return False


def wait_until(check: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out after {seconds} s waiting for {what}"
        time.sleep(0.2)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path, int, int]]:
    data, kafka, s3 = tmp_path / "data", free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EBACKPACK_")} | {
        "EBACKPACK_DATA_DIR": str(data),
        "EBACKPACK_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}",
        "EBACKPACK_S3_ENDPOINT": f"http://127.0.0.1:{s3}",
    }
    try:
        yield env, data, kafka, s3
    finally:
        cli(env, "stack", "down")


def recorded(data: Path) -> dict[str, int]:
    state = json.loads((data / "run" / "stack.json").read_text())
    return {name: entry["pid"] for name, entry in state.items()}


def test_stack_up_starts_only_what_is_missing_and_down_stops_what_it_started(
    stack_env: tuple[dict[str, str], Path, int, int],
) -> None:
    env, data, kafka, s3 = stack_env
    first = cli(env, "stack", "up")
    assert first.returncode == 0, first.stderr
    assert "started: seaweedfs, tansu" in first.stderr
    pids = recorded(data)

    again = cli(env, "stack", "up")  # everything runs: nothing is started, nothing replaced
    assert again.returncode == 0, again.stderr
    assert "already running (left alone): seaweedfs, tansu" in again.stderr
    assert recorded(data) == pids

    os.killpg(pids["seaweedfs"], signal.SIGTERM)  # only the S3 server goes down
    wait_until(lambda: not alive(pids["seaweedfs"]) and not listening(s3), 30, "the S3 server to stop")
    partial = cli(env, "stack", "up")
    assert partial.returncode == 0, partial.stderr
    assert "started: seaweedfs" in partial.stderr and "left alone): tansu" in partial.stderr
    after = recorded(data)
    assert after["tansu"] == pids["tansu"] and alive(pids["tansu"]), "the running broker was replaced"
    assert after["seaweedfs"] != pids["seaweedfs"] and alive(after["seaweedfs"])
    assert listening(s3) and listening(kafka)
    sent = KafkaProducer(bootstrap_servers=f"127.0.0.1:{kafka}").send("moodle.events", b"after").get(30)
    assert sent.offset >= 0  # the broker kept working, now with the new S3 server's process

    down = cli(env, "stack", "down")
    assert down.returncode == 0, down.stderr
    assert "stopped: tansu, seaweedfs" in down.stderr
    assert not alive(pids["tansu"]) and not alive(after["seaweedfs"]), "stack down left a process running"
    assert not listening(kafka) and not listening(s3)
    assert cli(env, "stack", "down").stderr.strip() == "nothing was running"


def test_stack_up_refuses_a_port_taken_by_something_else(
    stack_env: tuple[dict[str, str], Path, int, int],
) -> None:
    env, data, kafka, _s3 = stack_env
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", kafka))
        squatter.listen()
        result = cli(env, "stack", "up")
    assert result.returncode == 1
    assert f"127.0.0.1:{kafka} (tansu) is taken by a process" in result.stderr.replace("\n", " ")
    # the S3 server this call started is stopped again: nothing is left behind half up
    state = data / "run" / "stack.json"
    assert not state.exists() or "seaweedfs" not in json.loads(state.read_text())


def test_the_data_directory_is_private(stack_env: tuple[dict[str, str], Path, int, int]) -> None:
    """Names, e-mail addresses, share tokens, certificates and logs: folders 0700, files 0600, even when
    the umask would give everyone read access."""
    env, data, _kafka, _s3 = stack_env
    previous = os.umask(0o022)
    try:
        assert cli(env, "stack", "up").returncode == 0
        url = f"sqlite:///{data / 'ebackpack.db'}"
        migrate(url)
        engine = make_engine(url)
        with engine.begin() as conn:  # a write leaves the -wal and -shm files
            conn.execute(
                text(
                    "INSERT INTO learners (id, firstname, lastname, email, lang) "
                    "VALUES (1, 'Anna', 'Nowak', 'anna@example.org', 'pl')"
                )
            )
            wal, shm = Path(f"{data / 'ebackpack.db'}-wal"), Path(f"{data / 'ebackpack.db'}-shm")
            assert wal.exists() and shm.exists()
            files = [
                data / "ebackpack.db",
                wal,
                shm,
                data / "run" / "stack.json",
                data / "logs" / "tansu.log",
                data / "logs" / "seaweedfs.log",
            ]
            assert {str(f): oct(mode(f)) for f in files} == {str(f): "0o600" for f in files}
        engine.dispose()
    finally:
        os.umask(previous)
    folders = [data, data / "s3", data / "logs", data / "run"]
    assert {str(f): oct(mode(f)) for f in folders} == {str(f): "0o700" for f in folders}
    shared = [str(p) for p in (data / "s3").rglob("*") if p.is_dir() and mode(p) & 0o077]
    assert shared == [], "S3 data folders readable by others"


def test_worker_logs_faust_state_and_downloaded_certificates_are_private(
    settings: Settings, tmp_path: Path
) -> None:
    previous = os.umask(0o022)
    try:
        local = settings.model_copy(update={"data_dir": tmp_path / "fresh" / "data"})
        worker = Worker("issuer", local)  # its log is written from the first line on
        worker.start()
        worker.stop()
        make_app("probe", local)  # faust's state folder
        store = ObjectStore(settings)
        store.ensure_bucket()
        store.put("certificates/x/y.pdf", b"%PDF-1.7 Anna Nowak", "application/pdf")
        target = store.download("certificates/x/y.pdf", tmp_path / "out" / "certificate-X.pdf")
    finally:
        os.umask(previous)
    data = local.data_dir
    folders = [data, data / "logs", data / "faust", tmp_path / "out"]
    assert {str(f): oct(mode(f)) for f in folders} == {str(f): "0o700" for f in folders}
    files = [data / "logs" / "issuer.log", target]
    assert {str(f): oct(mode(f)) for f in files} == {str(f): "0o600" for f in files}
