"""What every benchmark script shares: its clock and progress lines, its error type, the load average
before it started, clean exits on SIGTERM, the main of a benchmark on a stack, and the tail of a worker's
log for error messages, the embedded broker's storage option."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from ebackpack.dev.stack import MEMORY_STORAGE, S3_STORAGE

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


Report = tuple[str, str]  # (the table for people, the JSON for programs)


def run_benchmark(
    name: str, work: Callable[[], Report], as_json: bool, failures: tuple[type[Exception], ...]
) -> int:
    """The main of a benchmark that starts a stack and workers: SIGTERM ends it as Ctrl-C does (every
    `finally` stops what was started); a failure of one of `failures` is one line and exit status 1.
    The table goes to stdout, or with `as_json` to stderr and the JSON to stdout."""
    previous = signal.signal(signal.SIGTERM, exit_on_sigterm)
    expected: tuple[type[Exception], ...] = (BenchError, *failures)
    try:
        text, json_text = work()
    except expected as exc:
        say(f"{name} failed: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted; everything started was stopped")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(text, file=sys.stderr if as_json else sys.stdout, flush=True)
    if as_json:
        print(json_text)
    return 0


def add_worker_options(parser: argparse.ArgumentParser, certificates_help: str) -> None:
    """The pipeline benchmarks' worker counts and whether completions earn a PDF."""
    parser.add_argument("--issuers", type=int, default=1, help="issuer worker processes")
    parser.add_argument("--renderers", type=int, default=2, help="renderer worker processes")
    parser.add_argument(
        "--certificates", action=argparse.BooleanOptionalAction, default=True, help=certificates_help
    )


def add_broker_storage_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker-storage",
        choices=("s3", "memory"),
        default="s3",
        help="the embedded broker's log: in the S3 server, as the stack runs it (default), or in memory, "
        "whose CPU cost per message is closer to a broker on other machines",
    )


def broker_storage(args: argparse.Namespace) -> str:
    """The embedded broker's storage URL the --broker-storage option names."""
    return MEMORY_STORAGE if args.broker_storage == "memory" else S3_STORAGE
