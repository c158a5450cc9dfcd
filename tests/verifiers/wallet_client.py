"""Independent OpenID4VCI 1.0 wallet client for the tests: a third-party Node library, not our code.

`receive(offer_uri, tx_code=..., key=..., mode=...)` runs `tests/verifiers/wallet/wallet.mjs` (the
pre-authorized code flow of `@openid4vc/openid4vci`, the client inside Credo wallets, with a fresh
did:key holder key made by `jose`) and returns its JSON report:

    {"ok", "mode", "holder_did", "holder_kid", "holder_public_jwk", "configuration_id", "format",
     "credentials", "issuer_metadata", "authorization_server_metadata", "version_detected",
     "insecure_urls_allowed", "credential_offer", "token_response", "c_nonce", "proof_nonce",
     "proof_jwt", "credential_response", "errors", "requests", ["forged_signing_did"],
     ["second_token_issued"]}

each error being {"step": "offer"|"metadata"|"token"|"nonce"|"proof"|"credential", "status": HTTP
status or None, "error": the OAuth error code of the server's JSON body or None,
"error_description", "message", "kind"}. Modes: normal, reuse (a second token request with the same
pre-authorized code, its error under step "token"), forged-proof (kid of key A, signed with key B),
stale-nonce (a made-up proof nonce), no-proof.

The npm packages are installed once with `npm ci` (pinned by package-lock.json) into
`<repo>/.cache/verifiers/wallet` (root overridable with EBACKPACK_VERIFIER_CACHE) and reused while the
harness files are unchanged. A broken harness raises RuntimeError: tests never skip silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.npm_cache import node_report, npm_install, verifier_cache_root

HARNESS_DIR = Path(__file__).resolve().parent / "wallet"
HARNESS_FILES = ("package.json", "package-lock.json", "wallet.mjs")
WHAT = "the OpenID4VCI wallet client"
KEYS = ("ed25519", "p256")
MODES = ("normal", "reuse", "forged-proof", "stale-nonce", "no-proof")

_ready: Path | None = None


def wallet_client_dir() -> Path:
    """The installed harness (wallet.mjs + node_modules), installing it with `npm ci` if needed."""
    global _ready
    if _ready is None:
        _ready = npm_install(HARNESS_DIR, HARNESS_FILES, verifier_cache_root(), "wallet", WHAT)
    return _ready


def receive(
    offer_uri: str,
    *,
    tx_code: str | None = None,
    key: str = "ed25519",
    mode: str = "normal",
    timeout: float = 60,
) -> dict[str, Any]:
    """Accept the credential offer `offer_uri` (openid-credential-offer://?credential_offer=...) as a wallet.

    Runs the whole pre-authorized code flow for the offer's first credential_configuration_id with a
    fresh holder key (`key`: "ed25519" -> EdDSA, "p256" -> ES256) and returns the report; protocol
    failures are in report["errors"], not raised. Plain http is allowed only to a loopback issuer.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if key not in KEYS:
        raise ValueError(f"key must be one of {KEYS}, not {key!r}")
    harness = wallet_client_dir()
    args = [offer_uri, "--key", key, "--mode", mode]
    if tx_code is not None:
        args += ["--tx-code", tx_code]
    return node_report(harness / "wallet.mjs", args, timeout, WHAT)
