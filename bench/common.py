"""What every benchmark script shares: its clock and progress lines, its error type, the load average
before it started, clean exits on SIGTERM, and the tail of a worker's log for error messages."""

from __future__ import annotations

import os
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ebackpack.dev.workers import Worker

CLOCK = time.monotonic()
LOAD_BEFORE = os.getloadavg()[0]


class BenchError(RuntimeError):
    pass


def say(text: str) -> None:
    """A progress line on stderr, with the seconds since the script started."""
    print(f"[{time.monotonic() - CLOCK:6.1f} s] {text}", file=sys.stderr, flush=True)


def exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`: workers, servers and stack stop


def log_tail(worker: Worker, lines: int = 12) -> str:
    try:
        tail = worker.log_path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"\n--- last lines of {worker.log_path.name} ---\n" + "\n".join(tail)
