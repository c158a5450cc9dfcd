"""Private local files. The data directory holds learners' names and e-mail addresses (SQLite), share
tokens, certificates (S3 data), signing keys and logs: folders are 0700 and files 0600, whatever the
process's umask."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
PRIVATE_UMASK = 0o077  # for child processes (S3 server, broker) that create files of their own


def private_dir(path: Path) -> Path:
    """Creates `path` and its missing parents as 0700 (`Path.mkdir(parents=True)` would give the parents
    the umask's mode); an existing `path` is made 0700. Parents that existed are left as they are."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    path.chmod(PRIVATE_DIR)
    return path


def private_file(path: Path) -> Path:
    """Creates `path` empty as 0600 if it does not exist; an existing file is made 0600."""
    os.close(os.open(path, os.O_CREAT | os.O_RDONLY, PRIVATE_FILE))
    path.chmod(PRIVATE_FILE)
    return path


def write_private(path: Path, data: bytes) -> Path:
    """Writes `data` to a 0600 file (0600 from its creation: never readable by others, not even briefly)."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    path.chmod(PRIVATE_FILE)
    return path


def tighten(path: Path) -> None:
    """An existing file made 0600 (e.g. SQLite's -wal and -shm files left by an older version)."""
    if path.exists():
        path.chmod(PRIVATE_FILE)
