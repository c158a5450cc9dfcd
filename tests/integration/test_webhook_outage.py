"""The webhook while the broker is down, frozen or never was up, and while Moodle's web services hang: in
every variant (no profiles, profiles from Moodle's database, profiles from its web services) the plugin
gets 503 with Retry-After well within its own 30 s request timeout, and a message that names what failed.

Real components: a Tansu broker of each test's own (killed with SIGKILL or frozen with SIGSTOP), Moodle's
tables on the machine's PostgreSQL, a stand-in for Moodle's REST web services, the webhook under uvicorn.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, text

from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.stack import free_port
from services.gateway.publisher import ProducerSlot
from tests.conftest import MOODLE_FIXTURES
from tests.integration.moodle_stand_in import Broker, Site, WebServices, moodle_database, serving
from tests.integration.test_webhook import SECRET, Webhook

pytestmark = pytest.mark.integration

REAL = MOODLE_FIXTURES / "real-4.4"
SITE = Site(
    users=[(5, "Anna", "Nowak", "anna@example.org", "pl"), (6, "Ben", "Smith", "ben@example.org", "en")],
    courses=[(4, "Pierwsza pomoc", "PP"), (5, "Python", "PY")],
    completions=[(3, 5, 4, 1796607424), (4, 6, 5, 1796607429)],
)
ANSWER_WITHIN = 10.0  # seconds: the plugin's request timeout is 30 s; the gateway aims at about 5 s
VARIANTS = ("plain", "database", "webservices")


def real(name: str) -> dict[str, Any]:
    return json.loads((REAL / f"observer-{name}.json").read_text(encoding="utf-8"))


@contextmanager
def profile_source(
    variant: str, settings: Settings, request: pytest.FixtureRequest, services: WebServices | None = None
) -> Iterator[Settings]:
    """`settings` configured to read profiles the `variant` way."""
    if variant == "plain":
        yield settings
    elif variant == "database":
        url = str(request.getfixturevalue("postgres_url"))
        engine = moodle_database(url, SITE)
        try:
            yield settings.model_copy(update={"moodle_db_url": url})
        finally:
            engine.dispose()
    else:
        services = services or WebServices(SITE)
        with serving(services) as moodle:
            yield settings.model_copy(
                update={"moodle_url": moodle, "moodle_ws_token": SecretStr(services.token)}
            )


def timed_post(server: Webhook, event: dict[str, Any]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = server.post(event, timeout=30)
    return answer, time.monotonic() - started


def assert_prompt_503(answer: httpx.Response, took: float, blames: str) -> None:
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) > 0
    detail = answer.json()["detail"]
    assert blames in detail, detail
    assert took < ANSWER_WITHIN, f"503 after {took:.1f} s"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("outage", ["killed", "frozen"])
def test_a_broker_that_goes_away_gets_503_within_seconds(
    variant: str, outage: str, settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with ExitStack() as stack:
        broker = stack.enter_context(Broker(tmp_path / "broker"))
        configured = settings.model_copy(
            update={"kafka_bootstrap": broker.bootstrap, "gateway_secret": SecretStr(SECRET)}
        )
        configured = stack.enter_context(profile_source(variant, configured, request))
        prepare(configured)
        server = stack.enter_context(Webhook(configured))
        first = server.post(real("course_completed-1"))
        assert first.status_code == 202, first.text  # producers connected, metadata known

        broker.kill() if outage == "killed" else broker.freeze()
        answer, took = timed_post(server, real("course_completed-2"))
        print(
            f"{variant} webhook, broker {outage}: {answer.status_code} after {took:.2f} s: "
            f"{answer.json()['detail']}"
        )
        assert_prompt_503(answer, took, "broker")
        assert "read from Moodle" not in answer.json()["detail"]
        again, took_again = timed_post(server, real("course_completed-2"))  # the plugin's retry
        assert_prompt_503(again, took_again, "broker")
        if outage == "frozen":  # the broker comes back: the next retry is accepted
            broker.thaw()
            deadline = time.monotonic() + 60
            while (retry := server.post(real("course_completed-2"))).status_code == 503:
                assert time.monotonic() < deadline, f"still refused after the broker came back: {retry.text}"
            assert (retry.status_code, retry.json()["accepted"]) == (202, 1), retry.text


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_gateway_started_while_the_broker_is_down_answers_503_within_seconds(
    variant: str, settings: Settings, request: pytest.FixtureRequest
) -> None:
    prepare(settings)  # topics on the shared broker; this gateway is pointed at a port nobody listens on
    down = settings.model_copy(
        update={"kafka_bootstrap": f"127.0.0.1:{free_port()}", "gateway_secret": SecretStr(SECRET)}
    )
    with profile_source(variant, down, request) as configured:
        started = time.monotonic()
        with Webhook(configured) as server:
            ready = time.monotonic() - started
            answer, took = timed_post(server, real("course_completed-1"))
    print(
        f"{variant} webhook, broker never up: started in {ready:.2f} s, "
        f"{answer.status_code} after {took:.2f} s"
    )
    assert ready < ANSWER_WITHIN
    assert_prompt_503(answer, took, "broker")


def test_moodle_web_services_that_hang_get_503_naming_moodle(
    settings: Settings, request: pytest.FixtureRequest
) -> None:
    configured = settings.model_copy(update={"gateway_secret": SecretStr(SECRET)})
    prepare(configured)
    slow = WebServices(SITE, delay=40.0)
    with (
        profile_source("webservices", configured, request, slow) as with_moodle,
        Webhook(with_moodle) as server,
    ):
        answer, took = timed_post(server, real("course_completed-1"))
    print(f"web services hanging: {answer.status_code} after {took:.2f} s")
    assert_prompt_503(answer, took, "Moodle")
    assert "broker" not in answer.json()["detail"]


def test_many_requests_at_once_while_the_broker_is_frozen_all_get_503_within_seconds(
    settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Several cron runners posting at once: threads blocked on the broker must not hold the others up."""
    with ExitStack() as stack:
        broker = stack.enter_context(Broker(tmp_path / "broker"))
        configured = settings.model_copy(
            update={"kafka_bootstrap": broker.bootstrap, "gateway_secret": SecretStr(SECRET)}
        )
        configured = stack.enter_context(profile_source("database", configured, request))
        prepare(configured)
        server = stack.enter_context(Webhook(configured))
        assert server.post(real("course_completed-1")).status_code == 202
        broker.freeze()
        events = [{**real("course_completed-2"), "objectid": str(100 + n)} for n in range(16)]
        with ThreadPoolExecutor(max_workers=len(events)) as senders:
            answers = list(senders.map(lambda event: timed_post(server, event), events))
    slowest = max(took for _answer, took in answers)
    print(
        f"16 requests at once, broker frozen: {sorted({a.status_code for a, _t in answers})}, "
        f"slowest after {slowest:.2f} s"
    )
    for answer, took in answers:
        assert_prompt_503(answer, took, "")


def test_a_producer_first_built_late_in_a_request_keeps_its_full_timeouts(settings: Settings) -> None:
    """Only its first connection is cut to the request's remaining time; later requests get the full bound."""
    slot = ProducerSlot(settings, "ebackpack-test", timeout=4.0)
    try:
        producer = slot.get(time.monotonic() + 0.8)
        assert (producer.config["delivery_timeout_ms"], producer.config["max_block_ms"]) == (4000, 4000)
        assert producer.config["request_timeout_ms"] >= 3900
        assert producer.config["bootstrap_timeout_ms"] <= 800
    finally:
        slot.close()


def test_a_moodle_database_that_hangs_gets_503_naming_moodle_and_recovers(
    settings: Settings, request: pytest.FixtureRequest
) -> None:
    configured = settings.model_copy(update={"gateway_secret": SecretStr(SECRET)})
    prepare(configured)
    with profile_source("database", configured, request) as with_moodle, Webhook(with_moodle) as server:
        assert with_moodle.moodle_db_url is not None
        locker = create_engine(with_moodle.moodle_db_url)
        try:
            with locker.connect() as connection:  # a long transaction holds the user table
                connection.execute(text("LOCK TABLE mdl_user IN ACCESS EXCLUSIVE MODE"))
                answer, took = timed_post(server, real("course_completed-1"))
                connection.rollback()
        finally:
            locker.dispose()
        print(f"Moodle database hanging: {answer.status_code} after {took:.2f} s: {answer.json()['detail']}")
        assert_prompt_503(answer, took, "Moodle")
        assert "broker" not in answer.json()["detail"]
        deadline = time.monotonic() + 60
        while (retry := server.post(real("course_completed-1"))).status_code == 503:
            assert time.monotonic() < deadline, retry.text
        assert retry.status_code == 202, retry.text
