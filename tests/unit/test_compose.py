"""docker-compose.yml: valid for Compose, consistent with the code it runs, and with no secret in it (they
come from `.env`, whose template is .env.example) and no port published on every interface.

Validation needs a Compose implementation but no Docker engine (`docker-compose config` of Debian's
docker-compose package, or `docker compose config`). CI must have one: there the test fails without
it instead of skipping.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from ebackpack.cli import app
from ebackpack.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
IMAGE = "ebackpack:latest"
# Written in parallel by another change (monitoring); until they land, their absence is expected.
PENDING_INFRA = ("infra/prometheus/", "infra/grafana/")
WORKERS = ("issuer", "renderer", "importer", "notifier")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _app_services() -> dict[str, dict[str, Any]]:
    """The services that run the e-Backpack image."""
    return {
        name: service for name, service in _compose()["services"].items() if service.get("image") == IMAGE
    }


def _environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- KEY=value` form
        return dict(item.partition("=")[::2] for item in env)
    return dict(env)


def compose_command() -> list[str] | None:
    if path := shutil.which("docker-compose"):
        return [path]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return None


def _command_or_skip() -> list[str]:
    command = compose_command()
    if command is None:
        message = "no Compose implementation: `apt-get install docker-compose` (in the Makefile's DEBS)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must validate docker-compose.yml")
        pytest.skip(message)
    return command


def env_example() -> dict[str, str]:
    """`.env.example`'s assignments (comments and blank lines left out)."""
    lines = [line for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def filled_env_file(folder: Path, **overrides: str) -> Path:
    """`.env.example` filled in as its comments say: a generated value for each one to generate."""
    values = {name: secrets.token_urlsafe(48) for name in env_example()}
    values |= {
        "EBACKPACK_SMTP_HOST": "smtp.example.org",
        "EBACKPACK_SMTP_USER": "ebackpack",
        "EBACKPACK_MOODLE_DB_URL": f"postgresql+psycopg://reader:{secrets.token_urlsafe(48)}@db/moodle",
    }
    values |= overrides
    path = folder / "test.env"
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    return path


def compose_config(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`config` with only this env file: no variable of the caller's shell, no `.env` of the checkout."""
    environment = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    # With the optional profile, so that every service is validated.
    return subprocess.run(
        [
            *_command_or_skip(),
            "--file",
            str(COMPOSE_FILE),
            "--env-file",
            str(env_file),
            "--profile",
            "logstore",
            "config",
            *args,
        ],
        cwd=env_file.parent,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_file_validates(tmp_path: Path) -> None:
    result = compose_config(filled_env_file(tmp_path), "-q")
    assert result.returncode == 0, result.stderr


REQUIRED = [
    "EBACKPACK_CODE_SECRET",
    "EBACKPACK_GATEWAY_SECRET",
    "POSTGRES_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
]


@pytest.mark.parametrize("name", REQUIRED)
def test_compose_refuses_to_start_without_each_secret(name: str, tmp_path: Path) -> None:
    result = compose_config(filled_env_file(tmp_path, **{name: ""}), "-q")
    assert result.returncode != 0
    assert f"set {name} in .env" in result.stderr, result.stderr


def test_env_example_has_every_variable_and_no_value(tmp_path: Path) -> None:
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    example = env_example()
    assert referenced == set(example), "docker-compose.yml and .env.example must name the same variables"
    assert all(value == "" for value in example.values()), "the template carries no values"
    assert "secrets.token_urlsafe" in ENV_EXAMPLE.read_text()
    result = compose_config(ENV_EXAMPLE, "-q")  # as committed: Compose stops and names what is missing
    assert result.returncode != 0 and "in .env (see .env.example)" in result.stderr


def test_no_secret_is_written_in_the_compose_file() -> None:
    """Every value of a secret-looking variable is a reference to `.env`, in every service."""
    secret = re.compile(r"SECRET|PASSWORD|TOKEN|_DB_URL|DATABASE_URL")
    for name, service in _compose()["services"].items():
        for key, value in _environment(service).items():
            if secret.search(key):
                assert "${" in str(value), f"{name}: {key} holds a value; take it from .env"


def test_nothing_is_published_on_every_interface() -> None:
    """A reverse proxy fronts what the public reaches; host ports listen on 127.0.0.1 only."""
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            spec = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
            assert spec.startswith("127.0.0.1:"), f"{name}: {spec} is published on every interface"


def test_the_resolved_stack_passes_the_production_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `.env` filled in as .env.example says, every e-Backpack service's settings pass the check
    its processes run at start (the database URL with its password, the S3 key, the secrets)."""
    result = compose_config(filled_env_file(tmp_path))
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name, service in services.items():
        if service.get("image") != IMAGE:
            continue
        for key in [k for k in os.environ if k.startswith("EBACKPACK_")]:
            monkeypatch.delenv(key)
        for key, value in _environment(service).items():
            monkeypatch.setenv(key, "" if value is None else str(value))
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        assert not settings.embedded, name
        assert settings.production_secret_problems() == [], name


def test_the_stack_has_every_service() -> None:
    services = _compose()["services"]
    assert {"kafka", "postgres", "minio", "prometheus", "grafana"} <= services.keys()
    assert {"prepare", *WORKERS, "backpack", "webhook", "poller"} <= _app_services().keys()
    for worker in ("issuer", "renderer", "importer"):
        assert services[worker]["deploy"]["replicas"] >= 2, worker


@pytest.mark.parametrize("name", sorted(_app_services()))
def test_settings_are_real_settings(name: str) -> None:
    service = _app_services()[name]
    unknown = [
        key
        for key in _environment(service)
        if key.startswith("EBACKPACK_")
        and key.removeprefix("EBACKPACK_").lower() not in Settings.model_fields
    ]
    assert not unknown, f"{name}: not in ebackpack/config.py Settings: {unknown}"


def check_command(args: list[str]) -> None:
    """Parses `args` with the real CLI: the subcommands must exist, the options and arguments (choices
    included) must parse. Runs nothing; raises the CLI's usage error otherwise."""
    command: Any = typer.main.get_command(app)
    name = "ebackpack"
    while hasattr(command, "commands"):  # a group: the next word picks the subcommand
        assert args, f"`{name}` needs a subcommand"
        name, *args = args
        assert name in command.commands, f"no subcommand `{name}`; there are {sorted(command.commands)}"
        command = command.commands[name]
    command.make_context(name, list(args))


@pytest.mark.parametrize("name", sorted(_app_services()))
def test_commands_exist_in_the_cli(name: str) -> None:
    command = _app_services()[name]["command"]
    assert command[0] == "ebackpack", command
    try:
        check_command(command[1:])
    except Exception as error:  # the CLI's usage errors (Typer may bundle its own click)
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        pytest.fail(f"{name}: `{' '.join(command)}` is not a valid command: {message}")


def test_the_services_run_the_expected_commands() -> None:
    commands = {name: service["command"][1:3] for name, service in _app_services().items()}
    assert commands["prepare"][:1] == ["prepare"]
    assert commands["backpack"][:1] == ["serve"]
    for worker in WORKERS:
        assert commands[worker] == ["worker", worker]
    assert commands["webhook"] == ["gateway", "webhook"]
    assert commands["poller"] == ["gateway", "poll"]


def _bind_mounts() -> list[str]:
    sources = []
    for service in _compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith(("./", "/")):
                sources.append(source.removeprefix("./"))
    return sources


def test_mounted_files_exist() -> None:
    assert (ROOT / "Dockerfile").is_file()
    mounts = _bind_mounts()
    assert mounts, "the monitoring configuration is mounted from infra/"
    missing = [m for m in mounts if not (ROOT / m).exists()]
    assert not [m for m in missing if not m.startswith(PENDING_INFRA)], missing
    if missing:
        pytest.xfail(f"monitoring configuration not written yet (another change): {missing}")


def test_monitoring_configuration_matches_the_stack() -> None:
    prometheus = ROOT / "infra/prometheus/prometheus.yml"
    provisioning = ROOT / "infra/grafana/provisioning"
    if not prometheus.is_file() or not provisioning.is_dir():
        pytest.xfail("monitoring configuration not written yet (another change)")
    scrape = prometheus.read_text()
    for target in (*WORKERS, "9100", "backpack:9100", "webhook:9100"):
        assert target in scrape, f"prometheus.yml does not scrape {target}"
    grafana = "\n".join(p.read_text() for p in provisioning.rglob("*") if p.is_file())
    assert "prometheus:9090" in grafana, "the Grafana data source is not the stack's Prometheus"
    assert "/etc/grafana/dashboards" in grafana, "docker-compose.yml mounts the dashboard there"
