"""What counts as a usable secret outside the embedded stack: pure rules, no settings, no I/O.

A secret that anyone can read (the placeholders of docker-compose.yml, .env.example, the defaults of
ebackpack/config.py), a short one, or a pattern would let a reader of the repository sign admin session
cookies, learner API tokens, verification codes and webhook completions. `weakness()` says why a value
is not usable, without ever repeating the value.
"""

from __future__ import annotations

import re

MIN_BYTES = 32
# A secret issued by a mail provider, not chosen by the operator: app passwords of the big providers
# have 16 characters.
MIN_BYTES_PROVIDER_PASSWORD = 16
# Fewer distinct characters than this is a pattern (`aaaa…`, `abab…`), not a random string: a random
# 32-character hex token (Moodle's web-services tokens) has 7 or fewer with a probability below 1e-7.
MIN_DISTINCT_CHARACTERS = 8
# Words of placeholders and defaults, compared after lower-casing and dropping everything but letters and
# digits (`Change_Me`, `change-me-db-password` and `changeme` are alike). At least five characters each:
# a token_urlsafe(48) contains one by chance with a probability of about 2e-6 (then generate another).
PLACEHOLDER_WORDS = (
    "changeme",
    "changethis",
    "replaceme",
    "placeholder",
    "example",
    "secret",
    "password",
    "passwd",
    "ebackpack",
    "default",
    "insecure",
    "dummy",
    "sample",
    "letmein",
    "qwerty",
    "123456",
)
GENERATE_COMMAND = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def weakness(value: str, minimum: int = MIN_BYTES) -> str | None:
    """Why `value` is not a usable secret, or None when it is."""
    if not value.strip():
        return "is empty"
    normalized = re.sub(r"[^a-z0-9]", "", value.lower())
    word = next((w for w in PLACEHOLDER_WORDS if w in normalized), None)
    if word is not None:
        return f"is a placeholder or a published default (it contains “{word}”)"
    if len(value.encode()) < minimum:
        return f"is shorter than {minimum} bytes ({len(value.encode())})"
    if len(set(value)) < MIN_DISTINCT_CHARACTERS:
        return f"is a pattern, not a random string (only {len(set(value))} distinct characters)"
    return None


def throwaway_secrets() -> dict[str, str]:
    """Fresh strong secrets for a stack that lives for one test or benchmark run on this machine and runs
    its processes as production does (EBACKPACK_EMBEDDED=false): Settings fields and values."""
    import secrets

    return {"code_secret": secrets.token_urlsafe(48), "s3_secret_key": secrets.token_urlsafe(48)}
