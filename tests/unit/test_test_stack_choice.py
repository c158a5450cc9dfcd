"""Which stack the integration tests run on: containers only when asked for and Docker answers."""

from __future__ import annotations

import pytest

from tests.conftest import CONTAINERS_VARIABLE, choose_test_stack


class Probe:
    """A Docker probe that answers as told and counts its calls."""

    def __init__(self, reachable: bool):
        self.reachable = reachable
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.reachable


def test_containers_when_asked_for_and_docker_answers() -> None:
    assert choose_test_stack(Probe(True), {CONTAINERS_VARIABLE: "1"}) == "containers"


def test_embedded_when_asked_for_but_no_docker() -> None:
    probe = Probe(False)
    assert choose_test_stack(probe, {CONTAINERS_VARIABLE: "1"}) == "embedded"
    assert probe.calls == 1


@pytest.mark.parametrize(
    "environ", [{}, {CONTAINERS_VARIABLE: "0"}, {CONTAINERS_VARIABLE: ""}, {CONTAINERS_VARIABLE: "yes"}]
)
def test_embedded_unless_asked_for_even_with_docker(environ: dict[str, str]) -> None:
    probe = Probe(True)
    assert choose_test_stack(probe, environ) == "embedded"
    assert probe.calls == 0  # Docker is not even probed


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONTAINERS_VARIABLE, "1")
    assert choose_test_stack(Probe(True)) == "containers"
    monkeypatch.delenv(CONTAINERS_VARIABLE)
    assert choose_test_stack(Probe(True)) == "embedded"
