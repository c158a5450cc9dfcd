"""The embedded stack (the default: no secret checks, development login) serves this machine only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ebackpack.adapters.webserver import check_bind_address
from ebackpack.config import Settings


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "backpack.example.org"])
def test_the_embedded_stack_refuses_to_listen_beyond_this_machine(host: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="refuses to listen on"):
        check_bind_address(Settings(data_dir=tmp_path, embedded=True), host)


def test_a_development_login_outside_the_embedded_stack_is_refused_too(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="EBACKPACK_DEV_LOGIN"):
        check_bind_address(Settings(data_dir=tmp_path, embedded=False, dev_login=True), "0.0.0.0")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_is_fine_in_the_embedded_stack(host: str, tmp_path: Path) -> None:
    check_bind_address(Settings(data_dir=tmp_path, embedded=True), host)


def test_production_mode_may_listen_anywhere(tmp_path: Path) -> None:
    check_bind_address(Settings(data_dir=tmp_path, embedded=False, dev_login=False), "0.0.0.0")


@pytest.mark.parametrize("command", [["serve"], ["gateway", "webhook"]])
def test_the_cli_says_why_it_does_not_start(command: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EBACKPACK_")}
    env["EBACKPACK_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "ebackpack.cli", *command, "--host", "0.0.0.0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "refuses to listen on 0.0.0.0" in done.stderr
    assert "EBACKPACK_DEV_LOGIN" in done.stderr
