"""Service workers as child processes (the demo and the tests start, stop and kill -9 them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ebackpack.adapters.files import private_dir, private_file
from ebackpack.config import Settings, settings_env
from ebackpack.dev.stack import signal_group

SERVICES = {
    "issuer": "services.issuer",
    "renderer": "services.renderer",
    "importer": "services.importer",
    "notifier": "services.notifier",
}


@dataclass
class Worker:
    name: str
    settings: Settings
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.settings.data_dir / "logs" / f"{self.name}.log"

    def start(self) -> None:
        private_dir(self.log_path.parent)  # logs may name learners: 0700 / 0600
        with private_file(self.log_path).open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", SERVICES[self.name.split("-")[0]]],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **settings_env(self.settings)},
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: no chance to commit offsets or finish a send."""
        self._signal(signal.SIGKILL)

    def stop(self, timeout: float = 15.0) -> None:
        self._signal(signal.SIGTERM)
        if self.process is not None:
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(timeout=5)

    def _signal(self, sig: int) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        signal_group(self.process.pid, sig)
        if sig == signal.SIGKILL:
            self.process.wait(timeout=10)


@contextmanager
def running(workers: list[Worker]) -> Iterator[list[Worker]]:
    """Starts the workers and stops them all on the way out, whatever happened in between."""
    try:
        for worker in workers:
            worker.start()
        yield workers
    finally:
        for worker in workers:
            worker.stop()
