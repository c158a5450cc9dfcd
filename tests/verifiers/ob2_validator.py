"""The official Open Badges 2.0 validator core, run from tests in its own virtual environment.

`openbadges` 1.1.2 (1EdTech/IMS) pins 2017-era libraries that cannot share the project venv, so it
gets a venv of its own, built once and cached (EBACKPACK_VERIFIER_CACHE overrides the cache root):

    from tests.verifiers.ob2_validator import validate_ob2
    result = validate_ob2("http://127.0.0.1:8000/ob2/assertions/1", recipient="jan@example.org")
    assert result["valid"], result["errors"]

`validate_ob2` also takes a baked .png/.svg or an assertion .json path. It never skips: a failed
install raises RuntimeError with pip's output.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.npm_cache import verifier_cache_root

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "ob2" / "requirements.txt"
VALIDATE = HERE / "ob2" / "validate.py"
INSTALL_TIMEOUT = 900.0
RUN_TIMEOUT = 120.0


def _fingerprint() -> str:
    """Rebuild the venv when the requirements or the interpreter change."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update(f"{sys.version_info[:3]}|{sys.base_prefix}".encode())
    return digest.hexdigest()


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Runs a step of the verifier in its own environment; any failure says what ran and what it printed."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=_clean_env())
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"timed out after {timeout:.0f}s: {' '.join(command)}\n{exc.stdout!r}") from exc
    if done.returncode != 0:
        raise RuntimeError(f"failed ({done.returncode}): {' '.join(command)}\n{done.stdout}\n{done.stderr}")
    return done


def _clean_env() -> dict[str, str]:
    """The child must see only its own venv, not the project's packages."""
    blocked = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PIP_REQUIRE_VIRTUALENV"}
    return {key: value for key, value in os.environ.items() if key not in blocked}


def _build(venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)], 300)
    python = str(venv / "bin" / "python")
    _run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "-r",
            str(REQUIREMENTS),
        ],
        INSTALL_TIMEOUT,
    )
    _run([python, str(VALIDATE), "--check"], RUN_TIMEOUT)


def ob2_verifier_python() -> Path:
    """The verifier venv's python, creating the venv on first use (safe across concurrent callers)."""
    root = verifier_cache_root()
    venv = root / "ob2-venv"
    stamp = venv / ".ebackpack-installed"
    python = venv / "bin" / "python"
    wanted = _fingerprint()
    if python.exists() and stamp.is_file() and stamp.read_text() == wanted:
        return python
    root.mkdir(parents=True, exist_ok=True)
    with (root / "ob2-venv.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder; the others wait, then find the stamp
        if not (python.exists() and stamp.is_file() and stamp.read_text() == wanted):
            _build(venv)
            partial = stamp.with_suffix(".tmp")
            partial.write_text(wanted)
            partial.replace(stamp)  # written last and atomically: a half-built venv has no stamp
    return python


def _command(
    target: str, recipient: str | None, contexts_dir: Path | None, manifest: Path | None
) -> list[str]:
    command = [str(ob2_verifier_python()), str(VALIDATE), str(target)]
    if recipient:
        command += ["--recipient", recipient]
    if contexts_dir is not None:
        command += ["--contexts", str(contexts_dir)]
    if manifest is not None:
        command += ["--manifest", str(manifest)]
    return command


def validate_ob2(
    target: str | Path,
    recipient: str | None = None,
    *,
    contexts_dir: Path | None = None,
    manifest: Path | None = None,
    timeout: float = RUN_TIMEOUT,
) -> dict[str, Any]:
    """Verify a hosted assertion URL, a baked .png/.svg or an assertion .json with the official validator.

    Returns {"valid": bool, "errors": [...], "warnings": [...], "report": <openbadges.verify result>,
    "http": {"fetches": [{url, status, content_type}], "served_locally": [...], "refused": [...]},
    "stderr": <validator log>}. Contexts default to
    ebackpack/domain/credentials/contexts (+ its manifest.json).
    """
    done = _run(_command(str(target), recipient, contexts_dir, manifest), timeout)
    result: dict[str, Any] = json.loads(done.stdout)
    result["stderr"] = done.stderr[-20000:]
    return result


def bakery_unbake(image: Path, timeout: float = RUN_TIMEOUT) -> str | None:
    """What the reference `openbadges_bakery.unbake` (1.1.0) reads from a baked PNG/SVG."""
    done = _run([str(ob2_verifier_python()), str(VALIDATE), str(image), "--unbake"], timeout)
    value = json.loads(done.stdout)["unbaked"]
    return value if value is None else str(value)
