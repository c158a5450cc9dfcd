"""Independent Open Badges 3.0 verifier for the tests: third-party Node libraries, not our code.

`verify_ob3("di" | "jwt" | "schema", document)` runs `tests/verifiers/ob3/verify.mjs` (Digital Bazaar's
`@digitalbazaar/vc` with eddsa-rdfc-2022 and Bitstring Status List, `jose` for VC-JWT, Ajv for the
official JSON Schema) and returns its JSON report:

- di:     {"verified", "proofVerified", "statusChecked", "revoked", "errors", ["status"]}
- jwt:    {"verified", "errors", "claims", "header", "signatureVerified", "statusChecked", "revoked"}
- schema: {"valid", "errors"}

The npm packages are installed once with `npm ci` (pinned by package-lock.json) into
`<repo>/.cache/verifiers/ob3` (root overridable with EBACKPACK_VERIFIER_CACHE) and reused while the
harness files are unchanged. A broken harness raises RuntimeError: tests never skip silently.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from tests.npm_cache import node_report, npm_install, verifier_cache_root

HARNESS_DIR = Path(__file__).resolve().parent / "ob3"
HARNESS_FILES = ("package.json", "package-lock.json", "verify.mjs")
MODES = ("di", "jwt", "schema")
# 1EdTech's JSON Schema of an OB 3.0 AchievementCredential (../shared/fixtures/external)
OFFICIAL_SCHEMA = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "fixtures"
    / "external"
    / "ob_v3p0_achievementcredential_schema.json"
)

_ready: Path | None = None


def ob3_verifier_dir() -> Path:
    """The installed harness (verify.mjs + node_modules), installing it with `npm ci` if needed."""
    global _ready
    if _ready is None:
        _ready = npm_install(HARNESS_DIR, HARNESS_FILES, verifier_cache_root(), "ob3", "the OB 3.0 verifier")
    return _ready


def verify_ob3(
    mode: str,
    document: str | dict[str, Any],
    base_url: str | None = None,
    schema: Path | None = None,
    timeout: float = 60,
    now: str | None = None,
) -> dict[str, Any]:
    """Verify `document` (credential JSON as dict or text; a compact VC-JWT for mode "jwt").

    `base_url` (http://127.0.0.1:PORT) restricts every fetch (DID documents, status lists) to that
    origin; without it any loopback origin is allowed, nothing else ever. `schema` is required for
    mode "schema". `now` (ISO 8601) replaces the current time for validity checks.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if mode == "schema" and schema is None:
        raise ValueError('mode "schema" needs schema=Path to the JSON Schema')
    harness = ob3_verifier_dir()
    text = document if isinstance(document, str) else json.dumps(document)
    with tempfile.TemporaryDirectory(prefix="ob3verify.") as tmp:
        doc_path = Path(tmp) / ("credential.jwt" if mode == "jwt" else "credential.json")
        doc_path.write_text(text, encoding="utf-8")
        args = ["--mode", mode, str(doc_path)]
        if base_url:
            args += ["--base-url", base_url]
        if schema is not None:
            args += ["--schema", str(Path(schema).resolve())]
        if now:
            args += ["--now", now]
        return node_report(harness / "verify.mjs", args, timeout, "the OB 3.0 verifier")
