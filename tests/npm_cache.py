"""Node packages the tests use (independent verifiers, axe-core), installed once with `npm ci` from a
pinned package-lock.json into `.cache/`, and reused while the harness files are unchanged."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


def _digest(harness: Path, files: Sequence[str]) -> str:
    h = hashlib.sha256()
    for name in files:
        h.update(name.encode() + b"\0" + (harness / name).read_bytes() + b"\0")
    return h.hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def npm_install(harness: Path, files: Sequence[str], cache_root: Path, name: str, what: str) -> Path:
    """`cache_root/name` holding `files` and their node_modules, installed if missing or stale.

    Safe for concurrent pytest processes: an exclusive file lock around the install, which is built in a
    temporary folder and renamed into place; a stamp file with the harness digest marks it done. A
    broken install raises RuntimeError (`what` names it): tests never skip silently.
    """
    target = cache_root / name
    stamp = target / ".installed"
    digest = _digest(harness, files)
    with _locked(cache_root / f"{name}.lock"):
        if stamp.is_file() and stamp.read_text() == digest:
            return target
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise RuntimeError(f"{what} needs `npm` and `node` (Node.js 20+) on PATH")
        build = Path(tempfile.mkdtemp(prefix=f"{name}.build.", dir=cache_root))
        try:
            for file in files:
                shutil.copy2(harness / file, build / file)
            proc = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=build,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if proc.returncode != 0:
                raise RuntimeError(
                    f"`npm ci` for {what} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
                )
            (build / ".installed").write_text(digest)
            old = None
            if target.exists():
                old = target.with_name(f"{name}.old.{os.getpid()}")
                target.rename(old)
            build.rename(target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if build.exists():
                shutil.rmtree(build, ignore_errors=True)
    return target


REPO_ROOT = Path(__file__).resolve().parents[1]


def verifier_cache_root() -> Path:
    """Where the harnesses are installed: `<repo>/.cache/verifiers`, or EBACKPACK_VERIFIER_CACHE."""
    override = os.environ.get("EBACKPACK_VERIFIER_CACHE")
    return Path(override) if override else REPO_ROOT / ".cache" / "verifiers"


def node(what: str) -> str:
    """The `node` binary, or RuntimeError naming the harness that needs it."""
    path = shutil.which("node")
    if path is None:
        raise RuntimeError(f"{what} needs `node` (Node.js 20+) on PATH")
    return path


def node_report(script: Path, args: list[str], timeout: float, what: str) -> dict[str, Any]:
    """Runs a harness script with node in its folder and returns the one JSON object it prints;
    RuntimeError (naming `what`) if it times out, crashes or prints no JSON."""
    cmd = [node(what), str(script), *args]
    try:
        proc = subprocess.run(cmd, cwd=script.parent, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{what} timed out after {timeout}s: {exc.stderr!r}") from exc
    if proc.returncode != 0:
        raise RuntimeError(f"{what} crashed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"{what} printed no JSON:\n{proc.stdout}\n{proc.stderr}") from exc
    return report
