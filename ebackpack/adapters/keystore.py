"""Where signing keys and the code secret live: PKCS#8 PEM files (mode 0600, folder 0700) named
`<algorithm>-<n>.pem`, generated on first start, or the environment (`EBACKPACK_SIGNING_KEYS`, a JSON
object kid -> PEM) in production. Private material never appears in a repr, a log line or an exception.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from ebackpack.config import Settings
from ebackpack.domain.credentials.keys import (
    PREFIX,
    KeyRing,
    PrivateKey,
    SigningKey,
    generate_key,
    keyring_from_json,
    parse_key,
)


def load_key_dir(folder: Path) -> KeyRing:
    keys = tuple(parse_key(path.stem, path.read_bytes()) for path in sorted(folder.glob("*.pem")))
    return KeyRing(keys)


def _create_once(path: Path, content: bytes) -> bool:
    """Atomically creates `path` (0600) with its whole content; False if another process was first."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".new-", suffix=".tmp")
    try:
        os.write(fd, content)
        os.fsync(fd)
        os.close(fd)
        os.link(tmp, path)  # fails if it exists: first writer wins
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def _write_new(folder: Path, kid: str, key: PrivateKey) -> bool:
    pem = SigningKey(kid, "Ed25519" if kid.startswith("ed25519") else "ES256", key).private_pem()
    return _create_once(folder / f"{kid}.pem", pem)


def ensure_key_dir(folder: Path) -> KeyRing:
    """Loads the keys, generating the first key of each kind on first start."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    ring = load_key_dir(folder)
    for algorithm, prefix in PREFIX.items():
        if not any(k.algorithm == algorithm for k in ring.keys):
            _write_new(folder, f"{prefix}-1", generate_key(algorithm))
    return load_key_dir(folder)


def rotate_key_dir(folder: Path) -> KeyRing:
    """Adds key n+1 of each kind; new credentials use it, the older keys stay published."""
    ring = ensure_key_dir(folder)
    for algorithm, prefix in PREFIX.items():
        _write_new(folder, f"{prefix}-{ring.current(algorithm).number + 1}", generate_key(algorithm))
    return load_key_dir(folder)


def keyring_for(settings: Settings) -> KeyRing:
    """Keys from `EBACKPACK_SIGNING_KEYS` when set, else from (or generated into) the key folder."""
    if settings.signing_keys is not None:
        return keyring_from_json(settings.signing_keys.get_secret_value())
    return ensure_key_dir(settings.key_dir)


CODE_SECRET_FILE = "code-secret"


def code_secret_for(settings: Settings) -> bytes:
    """The secret behind verification codes: from the environment, or a 0600 file made once."""
    if settings.code_secret is not None:
        return settings.code_secret.get_secret_value().encode()
    folder = settings.key_dir
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    path = folder / CODE_SECRET_FILE
    if not path.exists():
        _create_once(path, secrets.token_hex(32).encode())
    return path.read_bytes().strip()
