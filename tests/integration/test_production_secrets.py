"""Outside the embedded stack, no e-Backpack process starts with a secret anyone could know.

Every process is started as an operator starts it (the `ebackpack` command, the `python -m services.*`
workers, uvicorn's factory) with the placeholder values docker-compose.yml used to carry and
EBACKPACK_EMBEDDED=false: each must exit non-zero, naming the variables, before it reaches any server.
tests/e2e/test_production_start.py starts the same processes with strong values on a real stack.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ebackpack.config import Settings
from ebackpack.secret_policy import weakness

ROOT = Path(__file__).resolve().parents[2]
# The values docker-compose.yml carried before it took its secrets from `.env`.
COMPOSE_PLACEHOLDERS = {
    "EBACKPACK_CODE_SECRET": "change-me-long-random-string",
    "EBACKPACK_GATEWAY_SECRET": "change-me-same-as-the-moodle-plugin",
    "EBACKPACK_DATABASE_URL": "postgresql+psycopg://ebackpack:change-me-db-password@127.0.0.1:5432/ebackpack",
    "EBACKPACK_S3_SECRET_KEY": "change-me-s3-secret",
    "EBACKPACK_SMTP_PASSWORD": "change-me-smtp-password",
}
# Each names the same variable in its message (the database one by the URL variable).
PROCESSES: list[list[str]] = [
    ["serve"],
    ["gateway", "webhook"],
    ["gateway", "poll", "--once"],
    ["gateway", "backfill", "--since", "2024-09-01"],
    ["gateway", "import", "events.jsonl"],
    ["worker", "issuer"],
    ["worker", "renderer"],
    ["worker", "importer"],
    ["worker", "notifier"],
    ["prepare"],
    ["learner-token", "5722"],
    ["status", "--sample", "0.1"],
    ["deadletters", "list"],
    ["deadletters", "replay", "moodle.events.issuer.dlq", "--dry-run"],
    ["credential", "export", "ABCD-EFGH"],
    ["credential", "revoke", "ABCD-EFGH", "--reason", "test"],
    ["keys", "show"],
    ["keys", "rotate"],
    ["certificates", "rerender", "--course", "42"],
    ["certificates", "zip", "--course", "42", "--output", "out.zip"],
    ["demo"],
]
MODULES: list[list[str]] = [
    ["-m", "services.issuer"],
    ["-m", "services.renderer"],
    ["-m", "services.importer"],
    ["-m", "services.notifier"],
    ["-m", "uvicorn", "--factory", "services.gateway.webhook:from_environment", "--port", "0"],
    ["-m", "uvicorn", "--factory", "services.backpack.app:create_app", "--port", "0"],
]
# Long enough to start a server; a process that refuses exits in about a second.
EXIT_DEADLINE = 60.0


def strong() -> str:
    return secrets.token_urlsafe(48)


def cli() -> list[str]:
    script = Path(sys.executable).with_name("ebackpack")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ebackpack.cli"]


def environment(tmp_path: Path, values: dict[str, str]) -> dict[str, str]:
    """Only what the test sets (none of the caller's EBACKPACK_*), production mode, and no `.env`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EBACKPACK_")}
    return (
        env
        | {
            "EBACKPACK_EMBEDDED": "false",
            "EBACKPACK_DATA_DIR": str(tmp_path / "data"),
            "PYTHONPATH": str(ROOT),
        }
        | values
    )


def run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Runs until it exits; one still running at the deadline started despite the secrets: a failure."""
    proc = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        out, errors = proc.communicate(timeout=EXIT_DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, errors = proc.communicate()
        pytest.fail(
            f"`{' '.join(command)}` was still running after {EXIT_DEADLINE:.0f} s: it started "
            f"with placeholder secrets\n{errors[-2000:]}"
        )
    return subprocess.CompletedProcess(command, proc.returncode, out, errors)


@pytest.mark.parametrize("args", PROCESSES, ids=" ".join)
def test_every_command_refuses_the_compose_placeholders(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text("")
    result = run([*cli(), *args], environment(tmp_path, COMPOSE_PLACEHOLDERS), tmp_path)

    assert result.returncode != 0, result.stdout + result.stderr
    for variable in COMPOSE_PLACEHOLDERS:
        assert variable in result.stderr, (variable, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "change-me" not in result.stderr, "the message must not repeat the secret"
    assert "token" not in result.stdout.lower() and not result.stdout.strip(), result.stdout


@pytest.mark.parametrize("args", MODULES, ids=" ".join)
def test_every_module_entry_point_refuses_them_too(args: list[str], tmp_path: Path) -> None:
    result = run([sys.executable, *args], environment(tmp_path, COMPOSE_PLACEHOLDERS), tmp_path)

    assert result.returncode != 0, result.stderr
    assert "EBACKPACK_CODE_SECRET" in result.stderr and "EBACKPACK_GATEWAY_SECRET" in result.stderr, (
        result.stderr
    )


def strong_values() -> dict[str, str]:
    return {
        "EBACKPACK_CODE_SECRET": strong(),
        "EBACKPACK_GATEWAY_SECRET": strong(),
        "EBACKPACK_S3_SECRET_KEY": strong(),
        "EBACKPACK_DATABASE_URL": f"postgresql+psycopg://ebackpack:{strong()}@127.0.0.1:5432/ebackpack",
    }


WEAK: list[tuple[str, str]] = [
    ("EBACKPACK_CODE_SECRET", "changeme"),
    ("EBACKPACK_CODE_SECRET", "Change_Me_please_to_something_random_123"),
    ("EBACKPACK_CODE_SECRET", "k3Jq9xZ2"),  # random but short
    ("EBACKPACK_CODE_SECRET", "ab" * 32),  # long but a pattern
    ("EBACKPACK_CODE_SECRET", ""),
    ("EBACKPACK_GATEWAY_SECRET", "secret"),
    ("EBACKPACK_GATEWAY_SECRET", ""),
    ("EBACKPACK_S3_SECRET_KEY", "ebackpack-secret"),  # config.py's default
    ("EBACKPACK_DATABASE_URL", "postgresql+psycopg://ebackpack:hunter2@db/ebackpack"),
    ("EBACKPACK_MOODLE_DB_URL", "mysql+pymysql://reader:change-me@moodle-db/moodle"),
    ("EBACKPACK_SMTP_PASSWORD", "password123"),
    ("EBACKPACK_OIDC_CLIENT_SECRET", "example-client-secret"),
    ("EBACKPACK_MOODLE_WS_TOKEN", "0123456789abcdef"),
]


@pytest.mark.parametrize(("variable", "value"), WEAK, ids=[f"{v}={x!r}" for v, x in WEAK])
def test_one_weak_secret_among_strong_ones_is_named(variable: str, value: str, tmp_path: Path) -> None:
    env = environment(tmp_path, strong_values() | {variable: value})
    result = run([*cli(), "learner-token", "5722"], env, tmp_path)

    assert result.returncode != 0, result.stdout
    problems = [line for line in result.stderr.splitlines() if line.startswith("- ")]
    assert len(problems) == 1 and variable in problems[0], result.stderr
    if len(value) >= 12:  # (a bare placeholder word is named as the word the check found)
        assert value not in result.stderr, "the message must not repeat the secret"


def test_an_unset_code_secret_is_refused_with_what_to_do(tmp_path: Path) -> None:
    env = environment(tmp_path, strong_values())
    del env["EBACKPACK_CODE_SECRET"]
    result = run([*cli(), "learner-token", "5722"], env, tmp_path)

    assert result.returncode != 0
    assert "EBACKPACK_CODE_SECRET is not set" in result.stderr
    assert "secrets.token_urlsafe" in result.stderr and "code-secret" in result.stderr
    assert not (tmp_path / "data" / "keys" / "code-secret").exists(), "no secret generated in production"


def test_the_code_secret_must_not_be_another_secret(tmp_path: Path) -> None:
    values = strong_values()
    values["EBACKPACK_GATEWAY_SECRET"] = values["EBACKPACK_CODE_SECRET"]  # Moodle's admins know that one
    result = run([*cli(), "learner-token", "5722"], environment(tmp_path, values), tmp_path)

    assert result.returncode != 0
    assert "EBACKPACK_CODE_SECRET is the same as EBACKPACK_GATEWAY_SECRET" in result.stderr


def test_strong_secrets_start(tmp_path: Path) -> None:
    result = run([*cli(), "learner-token", "5722"], environment(tmp_path, strong_values()), tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.count(".") == 2  # an itsdangerous token


def test_optional_issued_secrets_left_empty_count_as_unset(tmp_path: Path) -> None:
    """.env.example leaves the SMTP password and the Moodle database URL empty: no e-mail, no poller."""
    values = strong_values() | {
        "EBACKPACK_SMTP_PASSWORD": "",
        "EBACKPACK_SMTP_HOST": "",
        "EBACKPACK_MOODLE_DB_URL": "",
    }
    result = run([*cli(), "learner-token", "5722"], environment(tmp_path, values), tmp_path)

    assert result.returncode == 0, result.stderr


def test_the_embedded_stack_is_not_checked(tmp_path: Path) -> None:
    """The embedded stack runs on 127.0.0.1 with generated keys and the local S3 server's default."""
    env = environment(tmp_path, {"EBACKPACK_EMBEDDED": "true"})
    result = run([*cli(), "learner-token", "5722"], env, tmp_path)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "keys" / "code-secret").exists()


GENERATORS: dict[str, Callable[[], str]] = {
    "token_urlsafe(48)": lambda: secrets.token_urlsafe(48),
    "token_hex(32)": lambda: secrets.token_hex(32),
    "token_hex(16)": lambda: secrets.token_hex(16),
    "passphrase": lambda: "correct horse battery staple mountain river 42",
}


# Named by generator, drawn in the test: test ids stay the same in every collection (pytest-xdist's
# workers must collect the same tests).
@pytest.mark.parametrize("generator", GENERATORS)
def test_generated_values_are_usable(generator: str) -> None:
    value = GENERATORS[generator]()
    assert weakness(value) is None


def test_settings_check_names_every_problem_at_once() -> None:
    settings = Settings(
        _env_file=None,
        embedded=False,
        code_secret="change-me-long-random-string",  # type: ignore[call-arg,arg-type]
        gateway_secret="too-short-but-random-7Qx",
    )  # type: ignore[arg-type]
    problems = settings.production_secret_problems()

    assert [p.split()[0] for p in problems] == [
        "EBACKPACK_S3_SECRET_KEY",
        "EBACKPACK_CODE_SECRET",
        "EBACKPACK_GATEWAY_SECRET",
    ]
    assert Settings(_env_file=None, embedded=True).production_secret_problems() == []  # type: ignore[call-arg]
