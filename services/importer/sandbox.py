"""Imports run in child processes under a per-file budget: wall clock, CPU and memory.

An upload is hostile until judged: a PDF whose page tree loops, a JSON-LD credential whose
canonicalization explodes. Each file is imported in a child process (`python -m
services.importer.sandbox`) that reads the upload from S3, imports it and answers with the record or
the rejection reason; the worker saves and announces it. The child runs under an address-space limit
(`RLIMIT_AS`) and, per file, a CPU limit (`RLIMIT_CPU`: SIGXCPU ends it); the worker kills its whole
process group (poppler included) at the wall-clock deadline. A killed child is replaced by a fresh one
started at once, so the next file does not wait for Python to start. The upload is then `rejected` with
the budget it ran over.

Protocol on the child's stdin/stdout: length-prefixed pickles, trusted both ways (our own processes).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

from ebackpack.config import Settings, get_settings, settings_env

log = logging.getLogger(__name__)
MiB = 1024 * 1024
_HEADER = struct.Struct(">I")
START_SECONDS = 60.0  # a child that is not ready within this long (a loaded machine) is replaced


@dataclass(frozen=True)
class Budget:
    seconds: float
    memory_bytes: int

    @classmethod
    def for_settings(cls, settings: Settings) -> Budget:
        return cls(settings.import_file_seconds, settings.import_file_memory_mb * MiB)

    def over_time(self) -> str:
        return (
            f"the file took longer than the {self.seconds:g} s one file may take to import: "
            "rejected (its processing was stopped at the deadline)"
        )

    def over_memory(self) -> str:
        return (
            f"the file needed more than the {self.memory_bytes // MiB} MiB of memory one file may "
            "use to import: rejected"
        )


@dataclass(frozen=True)
class Outcome:
    """What became of one file: a verdict (`result`: the Attestation JSON, or `reason` when rejected),
    or `transient` (our side failed, e.g. S3 or the database: the upload stays `received` and is tried
    again)."""

    result: str | None = None
    reason: str | None = None
    transient: str | None = None


def _write(stream: IO[bytes], message: Any) -> None:
    body = pickle.dumps(message)
    stream.write(_HEADER.pack(len(body)) + body)
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    (size,) = _HEADER.unpack(_exactly(stream, _HEADER.size))
    return pickle.loads(_exactly(stream, size))


def _exactly(stream: IO[bytes], size: int) -> bytes:
    """`size` bytes; the worker's end is unbuffered (so `select` sees all that is unread), where one
    read may return less."""
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return bytes(data)


class Sandbox:
    """One child process; `run` imports one stored upload in it within the budget (blocking)."""

    def __init__(self, settings: Settings, budget: Budget) -> None:
        self.settings, self.budget = settings, budget
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._start()

    def _start(self) -> None:
        env = {
            **os.environ,
            **settings_env(self.settings),
            "EBACKPACK_SANDBOX_MEMORY": str(self.budget.memory_bytes),
            "EBACKPACK_SANDBOX_CPU": str(max(1, round(self.budget.seconds))),
        }
        self._child = subprocess.Popen(
            [sys.executable, "-m", "services.importer.sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            env=env,
            start_new_session=True,
            bufsize=0,
        )

    def run(self, attestation_id: str) -> Outcome:
        with self._lock:
            child = self._child
            assert child is not None and child.stdin is not None and child.stdout is not None
            try:
                _write(child.stdin, attestation_id)
            except OSError:  # it died while idle: the file goes to a fresh one
                log.warning("an import process had ended while idle (exit status %s)", child.poll())
                self._replace()
                child = self._child
                assert child is not None and child.stdin is not None and child.stdout is not None
                _write(child.stdin, attestation_id)
            stdout = child.stdout
            assert stdout is not None
            if not self._answered(child, START_SECONDS):  # a fresh child imports our libraries first
                self._replace()
                return Outcome(transient="the import process did not start in time")
            try:
                started = _read(stdout)
            except (EOFError, pickle.UnpicklingError):
                started = None
            if started != "started":  # it died while starting (our side): the file is tried again later
                log.error("an import process ended before it took a file (exit status %s)", child.poll())
                self._replace()
                return Outcome(transient="the import process could not start")
            try:
                if not self._answered(child, self.budget.seconds):
                    log.warning(
                        "upload %s ran over its %g s budget: its import process was killed",
                        attestation_id,
                        self.budget.seconds,
                    )
                    self._replace()
                    return Outcome(reason=self.budget.over_time())
                kind, value, retire = _read(stdout)
            except (EOFError, pickle.UnpicklingError):
                return self._ended(child)
            if retire:  # it ran out of memory: libraries may be left in a bad state
                log.warning(
                    "upload %s ran over its memory budget: a fresh import process replaces the old",
                    attestation_id,
                )
                self._replace()
            return Outcome(**{kind: value})

    @staticmethod
    def _answered(child: subprocess.Popen[bytes], seconds: float) -> bool:
        assert child.stdout is not None
        return bool(select.select([child.stdout], [], [], seconds)[0])

    def _ended(self, child: subprocess.Popen[bytes]) -> Outcome:
        """The child died during the file: over its CPU or memory limit (or killed from outside)."""
        code = child.wait()
        self._replace()
        if code in (-signal.SIGXCPU, -signal.SIGKILL):
            return Outcome(reason=self.budget.over_time())
        return Outcome(
            reason=self.budget.over_memory()
            if code in (-signal.SIGSEGV, -signal.SIGABRT, 137)
            else f"the import process ended on this file (exit status {code}): rejected"
        )

    def _replace(self) -> None:
        self._kill()
        self._start()

    def _kill(self) -> None:
        child = self._child
        if child is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # the child and whatever it started (poppler)
        child.wait()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()

    def close(self) -> None:
        with self._lock:
            self._kill()
            self._child = None


class SandboxPool:
    """`size` sandboxes (one per CPU, at least 2, unless configured); the caller (the scheduler) never
    runs more than `size` files at once. Started on first use or by `start()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.size = settings.import_workers or max(2, os.cpu_count() or 2)
        self._idle: list[Sandbox] = []
        self._threads = ThreadPoolExecutor(self.size, thread_name_prefix="import-sandbox")
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            budget = Budget.for_settings(self.settings)
            self._idle = [Sandbox(self.settings, budget) for _ in range(self.size)]
            atexit.register(self.close)

    async def run(self, attestation_id: str) -> Outcome:
        self.start()
        sandbox = self._idle.pop()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._threads, sandbox.run, attestation_id)
        finally:
            self._idle.append(sandbox)

    def close(self) -> None:
        for sandbox in self._idle:
            sandbox.close()


# ------------------------------------------------------------------------------------- the child


def _limit_memory(memory: int) -> None:
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def _cpu_budget(seconds: int) -> None:
    """SIGXCPU (which ends the process) once this file has used `seconds` of CPU. The hard limit stays
    open: the soft one is moved up for each file."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (used + seconds, resource.RLIM_INFINITY))


def serve() -> None:
    """The child: imports one stored upload per request until its stdin closes."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from services.importer.service import ImporterService  # our libraries load before the memory limit

    service = ImporterService.from_settings(get_settings())
    cpu = int(os.environ.get("EBACKPACK_SANDBOX_CPU", "8"))
    memory = int(os.environ.get("EBACKPACK_SANDBOX_MEMORY", "0"))
    _limit_memory(memory)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not break the protocol
    while True:
        try:
            attestation_id = _read(stdin)
        except EOFError:
            return
        _cpu_budget(cpu)
        _write(stdout, "started")
        started = time.monotonic()
        try:
            verdict = service.compute(attestation_id)
            answer: tuple[str, str, bool] = (
                ("reason", verdict, False)
                if isinstance(verdict, str)
                else ("result", verdict.model_dump_json(), False)
            )
        except MemoryError:
            answer = ("reason", Budget(0, memory).over_memory(), True)
        except Exception as exc:  # S3, the database: our side, tried again later
            log.warning("import of %s failed on our side: %s", attestation_id, exc)
            answer = ("transient", f"{type(exc).__name__}: {exc}"[:500], False)
        log.debug("imported %s in %.2f s", attestation_id, time.monotonic() - started)
        _write(stdout, answer)


if __name__ == "__main__":
    serve()
