"""The gateway's webhook on the embedded broker: signed Moodle observer payloads in, `moodle.events` out,
each event once; refused requests publish nothing; broker outage and backpressure answer 503."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import hypothesis
import pytest
import uvicorn
from kafka.consumer.fetcher import ConsumerRecord
from pydantic import SecretStr
from sqlalchemy import select

from ebackpack.adapters.persistence.engine import make_engine, session_factory
from ebackpack.adapters.persistence.tables import GatewayEventRow
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.stack import free_port
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import MOODLE_COURSES, MOODLE_EVENTS, MOODLE_USERS
from schemas import MoodleEventMessage
from schemas.moodle import MoodleCourseMessage, MoodleEvent, MoodleUserMessage
from services.gateway.events import USED, PublishedEvents, moodle_message
from services.gateway.webhook import MAX_BODY, MAX_DEPTH, MAX_EVENTS, create_app, sign
from tests.conftest import MOODLE_FIXTURES, reserve_port
from tests.integration.moodle_stand_in import Site, WebServices, moodle_database, serving
from tests.unit.test_webhook_bounds import bodies

pytestmark = pytest.mark.integration

SECRET = "webhook-test-secret"
OBSERVED = (
    "course_completed.moodle45",
    "course_completed.moodle51",
    "course_completion_updated",
    "course_module_completion_updated",
    "user_deleted",
)


def observed(name: str) -> dict[str, Any]:
    return json.loads((MOODLE_FIXTURES / f"observer-{name}.json").read_text(encoding="utf-8"))


def fixture_batch(site: str) -> dict[str, Any]:
    return {"site": site, "events": [observed(name) for name in OBSERVED]}


def expected_messages(site: str, events: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """(id, key) of each used event, as `moodle_message()` makes them."""
    out = []
    for raw in events:
        event = MoodleEvent.model_validate(raw)
        if event.eventname in USED:
            event_id, (key, _value) = moodle_message(site, event)
            out.append((event_id, key))
    return out


def headers(
    body: bytes,
    *,
    secret: str = SECRET,
    site: str | None = "moodle.example.org",
    timestamp: int | None = None,
) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    out = {
        "Content-Type": "application/json",
        "X-Ebackpack-Timestamp": str(stamp),
        "X-Ebackpack-Signature": sign(secret, stamp, body),
    }
    if site is not None:
        out["X-Ebackpack-Site"] = site
    return out


class Webhook:
    """The webhook app under uvicorn in a thread, on a port reserved for it."""

    def __init__(self, settings: Settings, ack_timeout: float = 10.0) -> None:
        self.sock = reserve_port()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.settings = settings
        config = uvicorn.Config(create_app(settings, ack_timeout=ack_timeout), log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Webhook:
        self.thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).json()["service"] == "ebackpack-gateway":
                    return self
            except (httpx.HTTPError, ValueError, KeyError):
                time.sleep(0.05)
        raise RuntimeError("webhook server did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()

    def post(
        self, body: bytes | dict[str, Any], request_headers: dict[str, str] | None = None, timeout: float = 30
    ) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(
            f"{self.url}/moodle/events",
            content=raw,
            headers=headers(raw, site=self.settings.site_id) if request_headers is None else request_headers,
            timeout=timeout,
        )

    def pending(self) -> int:
        return int(httpx.get(f"{self.url}/healthz", timeout=5).json()["pending"])


@pytest.fixture
def gateway(settings: Settings) -> Settings:
    configured = settings.model_copy(update={"gateway_secret": SecretStr(SECRET)})
    prepare(configured)
    return configured


@pytest.fixture
def webhook(gateway: Settings) -> Iterator[Webhook]:
    with Webhook(gateway) as server:
        yield server


def published(settings: Settings) -> list[ConsumerRecord]:
    return read_topics(settings, [settings.topic(MOODLE_EVENTS)])


def ledger_rows(settings: Settings) -> list[GatewayEventRow]:
    with session_factory(make_engine(settings.db_url))() as session:
        return list(session.scalars(select(GatewayEventRow)))


def test_the_fixture_batch_publishes_the_used_events_keyed_by_learner_once(
    webhook: Webhook, gateway: Settings
) -> None:
    batch = fixture_batch(gateway.site_id)
    answer = webhook.post(batch)
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 3, "duplicates": 0, "ignored": 2}

    records = published(gateway)
    expected = expected_messages(gateway.site_id, batch["events"])
    assert len(expected) == 3  # both course_completed variants and user_deleted
    got = sorted((MoodleEventMessage.model_validate_json(r.value).id, r.key) for r in records)
    assert got == sorted(expected)
    assert sorted(r.key for r in records) == [b"5721", b"5721", b"5722"]  # relateduserid, not userid
    names = sorted(MoodleEventMessage.model_validate_json(r.value).data.eventname for r in records)
    assert names == sorted(["\\core\\event\\course_completed"] * 2 + ["\\core\\event\\user_deleted"])
    moodle51 = next(MoodleEventMessage.model_validate_json(r.value) for r in records if r.key == b"5722")
    assert (moodle51.data.objectid, moodle51.data.courseid, moodle51.subject) == (9132, 42, "5722")
    assert moodle51.source == f"moodle://{gateway.site_id}"

    rows = ledger_rows(gateway)
    assert sorted(r.event_id for r in rows) == sorted(e for e, _ in expected)
    assert {(r.site, r.source) for r in rows} == {(gateway.site_id, "webhook")}

    again = webhook.post(batch)  # the plugin retried, or sent the same events again
    assert again.status_code == 202, again.text
    assert again.json() == {"accepted": 0, "duplicates": 3, "ignored": 2}
    assert len(published(gateway)) == 3


def test_single_event_objects_of_moodle_45_and_51(webhook: Webhook, gateway: Settings) -> None:
    for name in ("course_completed.moodle45", "course_completed.moodle51"):
        answer = webhook.post(observed(name))
        assert (answer.status_code, answer.json()) == (202, {"accepted": 1, "duplicates": 0, "ignored": 0})
    decoy = webhook.post(observed("course_completion_updated"))  # a teacher saved settings: no award
    assert (decoy.status_code, decoy.json()) == (202, {"accepted": 0, "duplicates": 0, "ignored": 1})
    repeat = webhook.post(observed("course_completed.moodle51"))
    assert repeat.json() == {"accepted": 0, "duplicates": 1, "ignored": 0}
    assert sorted(r.key for r in published(gateway)) == [b"5721", b"5722"]


def test_the_same_event_twice_in_one_batch_is_sent_once(webhook: Webhook, gateway: Settings) -> None:
    event = observed("course_completed.moodle45")
    answer = webhook.post({"site": gateway.site_id, "events": [event, dict(event), observed("user_deleted")]})
    assert answer.json() == {"accepted": 2, "duplicates": 1, "ignored": 0}
    assert len(published(gateway)) == 2


def test_concurrent_requests_with_the_same_events_publish_them_once(
    webhook: Webhook, gateway: Settings
) -> None:
    batch = fixture_batch(gateway.site_id)
    answers: list[httpx.Response] = []
    senders = [threading.Thread(target=lambda: answers.append(webhook.post(batch))) for _ in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(timeout=30)
    assert [a.status_code for a in answers] == [202] * 4
    assert sum(a.json()["accepted"] for a in answers) == 3
    assert sum(a.json()["duplicates"] for a in answers) == 9
    assert len(published(gateway)) == 3


def test_unauthenticated_or_foreign_requests_are_refused_and_publish_nothing(
    webhook: Webhook, gateway: Settings
) -> None:
    site = gateway.site_id
    body = json.dumps(fixture_batch(site)).encode()
    good = headers(body, site=site)
    digest = good["X-Ebackpack-Signature"]
    flipped = digest[:-1] + ("1" if digest[-1] == "0" else "0")
    now = int(time.time())
    foreign = json.dumps(fixture_batch("other.example.org")).encode()
    cases: list[tuple[str, bytes, dict[str, str], int, str]] = [
        (
            "flipped signature",
            body,
            {**good, "X-Ebackpack-Signature": flipped},
            401,
            "signature does not match",
        ),
        (
            "wrong secret",
            body,
            headers(body, secret="not-the-secret", site=site),
            401,
            "signature does not match",
        ),
        ("body changed after signing", body.replace(b"5721", b"5799"), good, 401, "signature does not match"),
        (
            "no signature",
            body,
            {k: v for k, v in good.items() if k != "X-Ebackpack-Signature"},
            401,
            "missing X-Ebackpack-Signature",
        ),
        (
            "no timestamp",
            body,
            {k: v for k, v in good.items() if k != "X-Ebackpack-Timestamp"},
            401,
            "missing X-Ebackpack-Timestamp",
        ),
        ("no site", body, headers(body, site=None), 401, "missing X-Ebackpack-Site"),
        (
            "not sha256=",
            body,
            {**good, "X-Ebackpack-Signature": digest.removeprefix("sha256=")},
            401,
            "must be sha256=",
        ),
        ("stale timestamp", body, headers(body, site=site, timestamp=now - 301 - 5), 401, "stale timestamp"),
        ("future timestamp", body, headers(body, site=site, timestamp=now + 301 + 5), 401, "stale timestamp"),
        (
            "timestamp in milliseconds",
            body,
            headers(body, site=site, timestamp=now * 1000),
            401,
            "unix seconds",
        ),
        ("other site's header", body, headers(body, site="other.example.org"), 403, "moodle.example.org"),
        ("other site in the batch", foreign, headers(foreign, site=site), 403, "other.example.org"),
    ]
    for what, raw, request_headers, status, reason in cases:
        answer = webhook.post(raw, request_headers)
        assert answer.status_code == status, f"{what}: {answer.status_code} {answer.text}"
        assert reason in answer.json()["detail"], f"{what}: {answer.json()}"
    assert published(gateway) == []
    assert ledger_rows(gateway) == []


def test_malformed_bodies_get_422_naming_the_event_and_publish_nothing(
    webhook: Webhook, gateway: Settings
) -> None:
    site = gateway.site_id
    missing_course = observed("course_completed.moodle51")
    del missing_course["courseid"]
    bad_number = {**observed("user_deleted"), "relateduserid": "5721a"}
    cases: list[tuple[str, bytes, str, int | None, str | None]] = [
        ("not JSON", b'{"site": "moodle.example.org", "events": [', "not JSON", None, None),
        ("not UTF-8", b'{"eventname": "\xff"}', "not JSON", None, None),
        ("a list", b"[]", "must be a JSON object", None, None),
        (
            "events not a list",
            json.dumps({"site": site, "events": {}}).encode(),
            '"events" must be a list',
            None,
            None,
        ),
        ("batch without site", json.dumps({"events": []}).encode(), '"site"', None, None),
        (
            "an event without courseid",
            json.dumps(
                {
                    "site": site,
                    "events": [
                        observed("course_completed.moodle45"),
                        observed("user_deleted"),
                        missing_course,
                    ],
                }
            ).encode(),
            "event 2: field courseid",
            2,
            "courseid",
        ),
        (
            "a non-number id",
            json.dumps({"site": site, "events": [bad_number]}).encode(),
            "event 0: field relateduserid",
            0,
            "relateduserid",
        ),
        (
            "an event that is no object",
            json.dumps(
                {
                    "site": site,
                    "events": [observed("course_completed.moodle45"), "\\core\\event\\course_completed"],
                }
            ).encode(),
            "event 1",
            1,
            "(the event itself)",
        ),
        (
            "a single invalid event",
            json.dumps({**observed("course_completed.moodle45"), "crud": "x"}).encode(),
            "event 0: field crud",
            0,
            "crud",
        ),
    ]
    for what, raw, reason, index, field in cases:
        answer = webhook.post(raw, headers(raw, site=site))
        assert answer.status_code == 422, f"{what}: {answer.status_code} {answer.text}"
        problem = answer.json()
        assert reason in problem["detail"], f"{what}: {problem}"
        if index is not None:
            assert (problem["index"], problem["field"]) == (index, field), f"{what}: {problem}"
    assert published(gateway) == []
    assert ledger_rows(gateway) == []


def test_oversized_requests_get_413(webhook: Webhook, gateway: Settings) -> None:
    event = observed("course_completed.moodle45")
    many = json.dumps({"site": gateway.site_id, "events": [event] * (MAX_EVENTS + 1)}).encode()
    answer = webhook.post(many, headers(many, site=gateway.site_id))
    assert (answer.status_code, str(MAX_EVENTS) in answer.json()["detail"]) == (413, True)
    huge = json.dumps({**event, "other": {"padding": "x" * MAX_BODY}}).encode()
    answer = webhook.post(huge, headers(huge, site=gateway.site_id))
    assert answer.status_code == 413
    assert published(gateway) == []


def test_without_a_secret_the_webhook_is_not_configured(settings: Settings) -> None:
    prepare(settings)
    with Webhook(settings) as server:
        answer = server.post(fixture_batch(settings.site_id))
    assert answer.status_code == 503 and answer.json()["detail"].startswith("webhook not configured")
    assert "Retry-After" in answer.headers


def test_broker_outage_answers_503_records_nothing_and_a_retry_succeeds(gateway: Settings) -> None:
    batch = fixture_batch(gateway.site_id)
    ids = [event_id for event_id, _key in expected_messages(gateway.site_id, batch["events"])]
    down = gateway.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    with Webhook(down, ack_timeout=2.0) as server:
        started = time.monotonic()
        answer = server.post(batch)
        took = time.monotonic() - started
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) > 0
    assert "Nothing was lost" in answer.json()["detail"] and "again" in answer.json()["detail"]
    assert took < 10
    ledger = PublishedEvents(session_factory(make_engine(gateway.db_url)))
    assert ledger.unseen(ids) == set(ids)  # nothing recorded: the retry publishes them

    with Webhook(gateway) as server:
        retry = server.post(batch)
    assert (retry.status_code, retry.json()) == (202, {"accepted": 3, "duplicates": 0, "ignored": 2})
    assert len(published(gateway)) == 3
    assert ledger.unseen(ids) == set()


def test_backpressure_refuses_at_once_beyond_max_pending(gateway: Settings) -> None:
    slow = gateway.model_copy(
        update={"kafka_bootstrap": f"127.0.0.1:{free_port()}", "gateway_max_pending": 1}
    )
    with Webhook(slow, ack_timeout=4.0) as server:
        first: list[httpx.Response] = []
        holder = threading.Thread(target=lambda: first.append(server.post(fixture_batch(slow.site_id))))
        holder.start()
        deadline = time.monotonic() + 5
        while server.pending() < 1:
            assert time.monotonic() < deadline, "the first request never became pending"
            time.sleep(0.02)
        started = time.monotonic()
        second = server.post(observed("course_completed.moodle51"))
        took = time.monotonic() - started
        holder.join(timeout=30)
        assert server.pending() == 0
    assert second.status_code == 503 and "busy" in second.json()["detail"], second.text
    assert second.headers["Retry-After"] == "1"
    assert took < 1.0
    assert first and first[0].status_code == 503 and "Nothing was lost" in first[0].json()["detail"]
    assert ledger_rows(gateway) == []


# --- signed bodies that cannot become events: 4xx with a reason, never 5xx (the plugin retries 5xx) ------


def test_deep_nesting_and_impossible_times_get_422_with_a_reason(webhook: Webhook, gateway: Settings) -> None:
    event = observed("course_completed.moodle51")
    deep = {"site": gateway.site_id, "events": [{**event, "other": "@"}]}
    cases: list[tuple[str, bytes, str]] = [
        (
            f"nested {depth} deep",
            json.dumps(deep).replace('"@"', "[" * depth + "]" * depth).encode(),
            f"deeper than {MAX_DEPTH}",
        )
        for depth in (1_000, 100_000)
    ]
    cases += [
        (f"{field} {value}", json.dumps({**event, field: value}).encode(), field)
        for field in ("timecreated", "timecompleted")
        for value in (10**12, 10**30)
    ]
    cases.append(
        ("an id beyond a BIGINT", json.dumps({**event, "relateduserid": 2**64}).encode(), "relateduserid")
    )
    cases.append(("NaN", json.dumps({**event, "anonymous": float("nan")}).encode(), "not JSON"))
    cases.append(
        (
            "a lone surrogate",
            json.dumps({**event, "other": {"note": "\ud800"}}).encode(),
            "cannot be published",
        )
    )
    for what, raw, reason in cases:
        answer = webhook.post(raw, headers(raw, site=gateway.site_id))
        assert answer.status_code == 422, f"{what}: {answer.status_code} {answer.text[:300]}"
        assert reason in answer.text, f"{what}: {answer.text[:300]}"
    assert published(gateway) == []
    assert ledger_rows(gateway) == []


@hypothesis.settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture, hypothesis.HealthCheck.too_slow],
)
@hypothesis.given(body=bodies())
def test_no_signed_body_gets_a_5xx(webhook: Webhook, gateway: Settings, body: bytes) -> None:
    """Hypothesis mutates real Moodle 4.4 payloads (fields replaced by any JSON, dropped, nested 3,000 deep,
    bytes flipped), signs them and posts them over HTTP to the webhook on the real broker."""
    raw = body.replace(b"moodle.example.org", gateway.site_id.encode())
    answer = webhook.post(raw, headers(raw, site=gateway.site_id))
    assert answer.status_code < 500, f"{answer.status_code} {answer.text[:300]} for {raw[:300]!r}"
    assert answer.status_code == 202 or answer.json()["detail"]


# --- the payloads a real Moodle 4.4.2 site sent (shared/fixtures/moodle/real-4.4) -------------------------

REAL_44 = MOODLE_FIXTURES / "real-4.4"
REAL_SITE = Site(
    users=[(5, "Anna", "Nowak", "anna@example.org", "pl"), (6, "Ben", "Smith", "ben@example.org", "en")],
    courses=[(4, "Pierwsza pomoc", "PP"), (5, "Python", "PY")],
    completions=[(3, 5, 4, 1796607424), (4, 6, 5, 1796607429)],
)


def real_events() -> list[dict[str, Any]]:
    """Every captured event, in the order the site triggered them."""
    events = [json.loads(path.read_text(encoding="utf-8")) for path in REAL_44.glob("observer-*.json")]
    return sorted(events, key=lambda event: event["timecreated"])


@contextmanager
def reading_profiles(source: str, settings: Settings, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """`settings` reading the real site's profiles from Moodle's database or its web services."""
    if source == "database":
        url = str(request.getfixturevalue("postgres_url"))
        moodle = moodle_database(url, REAL_SITE)
        try:
            yield settings.model_copy(update={"moodle_db_url": url})
        finally:
            moodle.dispose()
    else:
        services = WebServices(REAL_SITE)
        with serving(services) as moodle_url:
            yield settings.model_copy(
                update={"moodle_url": moodle_url, "moodle_ws_token": SecretStr(services.token)}
            )


@pytest.mark.parametrize("source", ["database", "webservices"])
def test_the_real_moodle_44_payloads_give_awards_profiles_and_the_erasure(
    source: str, gateway: Settings, request: pytest.FixtureRequest
) -> None:
    events = real_events()
    assert len(events) == 5
    with reading_profiles(source, gateway, request) as with_moodle, Webhook(with_moodle) as server:
        answers = [server.post({"site": gateway.site_id, "events": [event]}) for event in events]
        assert [(a.status_code, a.json()) for a in answers] == [
            (202, {"accepted": 1, "duplicates": 0, "ignored": 0})
        ] * 5, [a.text for a in answers]
        again = [server.post({"site": gateway.site_id, "events": [event]}).json() for event in events]
        assert again == [{"accepted": 0, "duplicates": 1, "ignored": 0}] * 5  # the plugin's retries

    messages = [(r.key, MoodleEventMessage.model_validate_json(r.value)) for r in published(gateway)]
    assert len(messages) == 5
    by_name: dict[str, list[tuple[bytes, MoodleEventMessage]]] = {}
    for key, message in messages:
        by_name.setdefault(message.data.eventname.rsplit("\\", 1)[-1], []).append((key, message))
    completions = sorted(by_name["course_completed"], key=lambda kv: kv[0])
    assert [(k, m.data.courseid, m.data.objectid, m.data.completed_at) for k, m in completions] == [
        (b"5", 4, 3, 1796607424),
        (b"6", 5, 4, 1796607429),
    ]  # keyed by relateduserid, not the admin
    assert [(k, m.data.relateduserid) for k, m in by_name["user_updated"]] == [(b"6", 6), (b"6", 6)]
    [(key, erasure)] = by_name["user_deleted"]
    assert (key, erasure.data.relateduserid, erasure.data.other) == (b"5", 5, None)  # no username, e-mail
    assert b"e2e-a1796607404" not in b"".join(r.value for r in published(gateway))

    users = read_topics(gateway, [gateway.topic(MOODLE_USERS)])
    latest = {r.key: r.value for r in users}  # what compaction keeps
    assert latest[b"5"] is None  # the deleted learner's tombstone
    assert MoodleUserMessage.model_validate_json(latest[b"6"]).data.firstname == "Ben"
    # For the completion and each user_updated, and again for the retries (profiles are read and published
    # before the ledger is asked; the topic is compacted, so the latest wins).
    assert sum(r.key == b"6" for r in users) == 2 * 3
    courses = {
        r.key: MoodleCourseMessage.model_validate_json(r.value).data.fullname
        for r in read_topics(gateway, [gateway.topic(MOODLE_COURSES)])
    }
    assert courses == {b"4": "Pierwsza pomoc", b"5": "Python"}
