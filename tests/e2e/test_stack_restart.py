"""The embedded stack keeps what it acknowledged, and consumers notice a broker that lost data.

1. 250 course completions are sent through the Moodle webhook, one signed request each, by a sender that
   retries what is not accepted (as the plugin does); in the middle the stack goes down and up again
   with the real `ebackpack stack down` / `stack up`. Every accepted completion gives exactly one
   credential and one PDF, and nothing is dead-lettered.
2. The broker loses its log (its records deleted from its S3 bucket while it is stopped; the committed
   offsets stay): `ebackpack status` shows the consumer groups committed beyond the log end, the workers
   read the partitions again from the start, completions sent afterwards are issued, and the render
   requests the broker lost are sent again by the issuer (from its outbox), so every completion has its
   PDF in the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import uvicorn
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.broker import Broker
from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow, OutboxRow
from ebackpack.adapters.storage import ObjectStore
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings, settings_env
from ebackpack.dev.sample_data import load_profiles, rule_course_ids, synthetic_learner
from ebackpack.dev.stack import EmbeddedStack, free_port, signal_group
from ebackpack.dev.workers import Worker
from ebackpack.secret_policy import throwaway_secrets
from ebackpack.streaming.offset_guard import Marks
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import MOODLE_EVENTS, RENDER_REQUESTS, TOPICS
from schemas import MoodleEventMessage
from schemas.moodle import Profiles
from services.gateway.profiles import store_profiles
from services.gateway.publisher import MoodleEventPublisher
from services.gateway.webhook import create_app, sign
from tests.builders import completion
from tests.conftest import reserve_port

pytestmark = pytest.mark.e2e

COMPLETIONS = 250
RESTART_AFTER = 100  # accepted completions before `stack down`
DONE_WITHIN = 240.0  # seconds after the last completion was accepted
SEND_WITHIN = 300.0  # seconds the sender may take for all (the restart and its 503s included)
WHEN = datetime(2026, 2, 2, tzinfo=UTC)


# --- helpers -------------------------------------------------------------------------------------------


def wait_until(what: str, ready: Callable[[], bool], seconds: float, workers: Sequence[Worker] = ()) -> float:
    """Polls `ready()` (errors count as not yet); returns the seconds it took."""
    started = time.monotonic()
    last = ""
    while True:
        try:
            if ready():
                return time.monotonic() - started
        except Exception as exc:  # the database or broker is still coming back
            last = f"{type(exc).__name__}: {exc}"
        dead = [w.name for w in workers if not w.running]
        assert not dead, f"worker(s) {dead} died while waiting for {what}"
        assert time.monotonic() - started < seconds, f"timed out after {seconds:.0f} s: {what} {last}"
        time.sleep(0.5)


def rules_with_certificates(settings: Settings, target: Path) -> Path:
    target.write_text(
        settings.rules_file.read_text(encoding="utf-8").replace("certificate = false", "certificate = true")
    )
    return target


def learners_and_pairs(count: int, first: int = 0) -> tuple[Profiles, list[tuple[int, int]]]:
    """`count` distinct (learner, course) completions of courses with a rule, by synthetic learners."""
    courses = rule_course_ids()
    learners = [synthetic_learner(first + i) for i in range(-(-count // len(courses)))]
    pairs = [(learner.id, course) for learner in learners for course in courses][:count]
    return Profiles(users=learners, courses=load_profiles().courses), pairs


@dataclass
class Pipeline:
    settings: Settings
    sessions: sessionmaker[Session]
    workers: list[Worker] = field(default_factory=list)

    def start(self, *names: str, **overrides: Any) -> None:
        for name in names:
            worker = Worker(name, self.settings.model_copy(update=overrides))
            worker.start()
            self.workers.append(worker)

    def stop(self, name: str | None = None) -> None:
        for worker in [w for w in self.workers if name in (None, w.name)]:
            worker.stop()
            self.workers.remove(worker)

    def counts(self) -> tuple[int, int, int]:
        """(awards, certificate rows, outbox events not acknowledged yet)."""
        with self.sessions() as s:
            return (
                int(s.scalar(select(func.count()).select_from(AwardRow)) or 0),
                int(s.scalar(select(func.count()).select_from(CertificateRow)) or 0),
                int(
                    s.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.sent_at.is_(None)))
                    or 0
                ),
            )

    def done(self, pairs: set[tuple[int, int]]) -> bool:
        awards, certificates, pending = self.counts()
        return awards >= len(pairs) and certificates >= len(pairs) and pending == 0

    def assert_exactly_once(self, pairs: set[tuple[int, int]]) -> None:
        """One award per completion and one certificate row and one PDF in S3 per award."""
        with self.sessions() as s:
            awards = s.execute(select(AwardRow.credential_id, AwardRow.learner_id, AwardRow.course_id)).all()
            rows = Counter(s.scalars(select(CertificateRow.credential_id)))
        per_pair = Counter((learner, course) for _c, learner, course in awards)
        assert set(per_pair) == pairs and set(per_pair.values()) == {1}, (
            f"{len(awards)} awards for {len(pairs)} completions; missing {sorted(pairs - set(per_pair))[:10]}"
        )
        credentials = {c for c, _l, _k in awards}
        assert set(rows) == credentials and set(rows.values()) == {1}, (
            f"certificate rows: missing {sorted(credentials - set(rows))[:10]}, "
            f"twice {[c for c, n in rows.items() if n > 1][:10]}"
        )
        objects = Counter(key.split("/")[1] for key in ObjectStore(self.settings).keys("certificates/"))
        assert set(objects) == credentials and set(objects.values()) == {1}, (
            f"PDFs in S3: missing {sorted(credentials - set(objects))[:10]}"
        )

    def dead_letters(self) -> int:
        topics = [self.settings.topic(t.name) for t in TOPICS if t.name.endswith(".dlq")]
        return len(read_topics(self.settings, topics, idle_ms=1000))


def pipeline(settings: Settings, tmp_path: Path, profiles: Profiles) -> Pipeline:
    settings = settings.model_copy(
        update={"rules_file": rules_with_certificates(settings, tmp_path / "rules.toml")}
    )
    sessions = prepare(settings)
    store_profiles(sessions, profiles)
    return Pipeline(settings, sessions)


# --- 1: stack down / stack up during 250 webhook completions ---------------------------------------------


def listening(address: str) -> bool:
    host, _, port = address.removeprefix("http://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ebackpack.cli", *args], env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture
def cli_stack(tmp_path: Path) -> Iterator[tuple[dict[str, str], Settings]]:
    """The stack as an operator runs it (`ebackpack stack up` in its own data folder), and the settings
    of a pipeline on it."""
    keys = throwaway_secrets()
    kafka, s3 = f"127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EBACKPACK_")} | {
        "EBACKPACK_DATA_DIR": str(tmp_path / "stack"),
        "EBACKPACK_KAFKA_BOOTSTRAP": kafka,
        "EBACKPACK_S3_ENDPOINT": s3,
        "EBACKPACK_S3_SECRET_KEY": keys["s3_secret_key"],
        "COLUMNS": "250",
    }
    up = cli(env, "stack", "up")
    assert up.returncode == 0, up.stderr
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "embedded": False,
            "kafka_bootstrap": kafka,
            "s3_endpoint": s3,
            "s3_bucket": "restart",
            "database_url": f"sqlite:///{tmp_path / 'ebackpack.db'}",
            "gateway_secret": secrets.token_urlsafe(32),
            **keys,
        }
    )
    try:
        yield env, settings
    finally:
        cli(env, "stack", "down")


class WebhookServer:
    def __init__(self, settings: Settings) -> None:
        self.sock = reserve_port()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/moodle/events"
        self.server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> WebhookServer:
        self.thread.start()
        wait_until(
            "the webhook",
            lambda: httpx.get(self.url.replace("/moodle/events", "/healthz"), timeout=1).status_code == 200,
            20,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()


def observed_completion(learner: int, course: int, index: int) -> dict[str, Any]:
    """A course_completed event as the local_ebackpack plugin's observer sends it."""
    return {
        "eventname": "\\core\\event\\course_completed",
        "component": "core",
        "action": "completed",
        "target": "course",
        "objecttable": "course_completions",
        "objectid": 500_000 + index,
        "crud": "u",
        "edulevel": 2,
        "contextid": 9000 + course,
        "contextlevel": 50,
        "contextinstanceid": course,
        "userid": 2,
        "courseid": course,
        "relateduserid": learner,
        "anonymous": 0,
        "other": {"relateduserid": learner},
        "timecreated": int(time.time()),
    }


class Sender(threading.Thread):
    """Sends each completion in its own signed request until it is accepted (202); a 503 or a refused
    connection is retried after Retry-After (at most 2 s), like the plugin's adhoc task."""

    def __init__(self, url: str, settings: Settings, events: list[dict[str, Any]]) -> None:
        super().__init__(name="webhook-sender", daemon=True)
        self.url, self.settings, self.events = url, settings, events
        self.accepted: list[dict[str, Any]] = []
        self.unavailable = 0  # 503 answers
        self.refused = 0  # connection errors and timeouts
        self.slowest_503 = 0.0
        self.failure: str | None = None

    def post(self, client: httpx.Client, event: dict[str, Any]) -> httpx.Response:
        body = json.dumps({"site": self.settings.site_id, "events": [event]}).encode()
        stamp = int(time.time())
        assert self.settings.gateway_secret is not None
        return client.post(
            self.url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Ebackpack-Timestamp": str(stamp),
                "X-Ebackpack-Site": self.settings.site_id,
                "X-Ebackpack-Signature": sign(self.settings.gateway_secret.get_secret_value(), stamp, body),
            },
        )

    def run(self) -> None:
        give_up = time.monotonic() + SEND_WITHIN
        with httpx.Client(timeout=30) as client:
            for event in self.events:
                while True:
                    if time.monotonic() > give_up:
                        self.failure = f"not all sent within {SEND_WITHIN:.0f} s"
                        return
                    asked = time.monotonic()
                    try:
                        answer = self.post(client, event)
                    except httpx.HTTPError:
                        self.refused += 1
                        time.sleep(1)
                        continue
                    if answer.status_code == 202:
                        self.accepted.append(event)
                        break
                    if answer.status_code != 503:
                        self.failure = f"{answer.status_code}: {answer.text}"
                        return
                    self.unavailable += 1
                    self.slowest_503 = max(self.slowest_503, time.monotonic() - asked)
                    time.sleep(min(float(answer.headers.get("Retry-After", "1")), 2.0))
                time.sleep(0.02)


def test_stack_down_and_up_during_250_webhook_completions_loses_nothing(
    cli_stack: tuple[dict[str, str], Settings], tmp_path: Path
) -> None:
    env, settings = cli_stack
    profiles, pairs = learners_and_pairs(COMPLETIONS)
    run = pipeline(settings, tmp_path, profiles)
    events = [observed_completion(learner, course, i) for i, (learner, course) in enumerate(pairs)]
    run.start("issuer", "renderer")
    try:
        with WebhookServer(run.settings) as webhook:
            sender = Sender(webhook.url, run.settings, events)
            sender.start()
            wait_until(
                f"{RESTART_AFTER} accepted completions",
                lambda: len(sender.accepted) >= RESTART_AFTER or not sender.is_alive(),
                180,
                run.workers,
            )
            assert sender.is_alive() and sender.failure is None, sender.failure
            clock = time.monotonic()
            down = cli(env, "stack", "down")
            down_seconds = time.monotonic() - clock
            assert down.returncode == 0 and "tansu" in down.stderr and "seaweedfs" in down.stderr, down.stderr
            accepted_while_up = len(sender.accepted)
            wait_until(
                "the stack's ports to close",
                lambda: (
                    not any(
                        listening(address) for address in (settings.kafka_bootstrap, settings.s3_endpoint)
                    )
                ),
                60,
            )
            clock = time.monotonic()
            up = cli(env, "stack", "up")
            up_seconds = time.monotonic() - clock
            assert up.returncode == 0, up.stderr
            sender.join(SEND_WITHIN)
            assert sender.failure is None, sender.failure
            assert len(sender.accepted) == COMPLETIONS
            took = wait_until(
                "every accepted completion issued and rendered",
                lambda: run.done(set(pairs)),
                DONE_WITHIN,
                run.workers,
            )
        print(
            f"\nstack down {down_seconds:.1f} s (after {accepted_while_up} accepted), stack up "
            f"{up_seconds:.1f} s; sender saw {sender.unavailable} x 503 "
            f"(slowest {sender.slowest_503:.1f} s) "
            f"and {sender.refused} refused connections; all done {took:.1f} s after the last was accepted"
        )
        run.assert_exactly_once(set(pairs))
        published = {
            MoodleEventMessage.model_validate_json(r.value).data.relateduserid
            for r in read_topics(run.settings, [run.settings.topic(MOODLE_EVENTS)], idle_ms=1000)
        }
        assert {learner for learner, _c in pairs} <= published, "accepted completions missing from the log"
        assert run.dead_letters() == 0
    finally:
        run.stop()


# --- 2: a broker that lost its data ----------------------------------------------------------------------


def lose_broker_data(stack: EmbeddedStack, settings: Settings) -> int:
    """Stops the broker, deletes the records of this run's topics from its bucket (committed offsets
    stay, as after a lost disk or an unclean leader election) and starts it again."""
    proc = stack.processes.pop("tansu")
    signal_group(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    s3 = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
        region_name=settings.s3_region,
    )
    deleted = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket="tansu", Prefix=f"clusters/tansu_cluster/topics/{settings.topic_prefix}"
    ):
        for item in page.get("Contents", []):
            if "/records/" in item["Key"] or item["Key"].endswith("/watermark.json"):
                s3.delete_object(Bucket="tansu", Key=item["Key"])
                deleted += 1
    stack._start_broker(60)
    return deleted


def stack_and_pipeline(
    cleanup: contextlib.ExitStack, tmp_path: Path, name: str, profiles: Profiles
) -> tuple[EmbeddedStack, Settings, Pipeline]:
    """A stack of the test's own (so it can lose its broker's data) and a pipeline on it, its bucket and
    topic prefix named `name`, issuer and renderer started; both end with `cleanup`. Returns (the stack,
    the stack's settings, the pipeline)."""
    base = Settings.model_validate(
        {
            "data_dir": tmp_path / "stack",
            "embedded": False,
            "kafka_bootstrap": f"127.0.0.1:{free_port()}",
            "s3_endpoint": f"http://127.0.0.1:{free_port()}",
            **throwaway_secrets(),
        }
    )
    stack = cleanup.enter_context(EmbeddedStack(base))
    settings = base.model_copy(
        update={
            "data_dir": tmp_path / "data",
            "s3_bucket": name,
            "topic_prefix": f"{name}.",
            "database_url": f"sqlite:///{tmp_path / 'ebackpack.db'}",
        }
    )
    run = pipeline(settings, tmp_path, profiles)
    cleanup.callback(run.stop)
    run.start("issuer", "renderer")
    return stack, base, run


def status_text(settings: Settings) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ebackpack.cli", "status", "--sample", "0"],
        env=os.environ | settings_env(settings) | {"COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def publish(settings: Settings, pairs: list[tuple[int, int]]) -> None:
    publisher = MoodleEventPublisher(settings)
    try:
        publisher.publish(
            [(str(learner).encode(), completion(learner, course, WHEN)) for learner, course in pairs]
        )
    finally:
        publisher.close()


def scrape(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_a_broker_that_lost_its_data_is_detected_reported_and_repaired(tmp_path: Path) -> None:
    profiles, pairs = learners_and_pairs(40)
    before, unrendered, after = pairs[:20], pairs[20:30], pairs[30:]
    with contextlib.ExitStack() as cleanup:
        stack, base, run = stack_and_pipeline(cleanup, tmp_path, "lost", profiles)
        publish(run.settings, before)
        wait_until("the first 20 PDFs", lambda: run.done(set(before)), 120, run.workers)
        run.stop("renderer")  # these 10 are issued and their render requests acknowledged, not rendered
        publish(run.settings, unrendered)
        wait_until(
            "10 more awards announced",
            lambda: run.counts()[0] == 30 and run.counts()[2] == 0,
            60,
            run.workers,
        )
        run.stop()

        deleted = lose_broker_data(stack, base)
        assert deleted > 0
        shown = status_text(run.settings)
        groups = {
            "issuer": run.settings.topic(run.settings.issuer_group),
            "renderer": run.settings.topic("renderer"),
        }
        for group in groups.values():
            assert f"Broker lost data: {group}" in shown, shown
        assert "beyond end" in shown, shown

        publish(run.settings, after)  # written at offsets the groups had committed already
        metrics_port = free_port()
        run.start("issuer")
        run.start("renderer", metrics_port=metrics_port)
        took = wait_until(
            "every completion issued and rendered", lambda: run.done(set(pairs)), 180, run.workers
        )
        print(f"\nrepaired: all 40 completions issued and rendered {took:.1f} s after the workers started")
        resets = scrape(metrics_port, "ebackpack_offset_resets_total")
        shown = status_text(run.settings)
        assert "Broker lost data" not in shown and "beyond end" not in shown, shown
        assert "Offsets reset: the broker had lost data" in shown
        for group in groups.values():
            assert group in shown.split("Offsets reset")[1]
        assert resets >= 1
        run.assert_exactly_once(set(pairs))
        assert run.dead_letters() == 0
        with run.sessions() as s:
            render_topic = run.settings.topic(RENDER_REQUESTS)
            assert (
                s.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.topic == render_topic))
                == 40
            )


def marked(settings: Settings) -> bool:
    """Every partition of the issuer's and the renderer's input that holds records has its marks."""
    groups = {
        settings.topic(settings.issuer_group): MOODLE_EVENTS,
        settings.topic("renderer"): RENDER_REQUESTS,
    }
    with Broker(settings) as broker:
        for group, name in groups.items():
            committed = broker.committed(group)
            marks = Marks.of(settings.data_dir, group)
            tps = broker.partitions(settings.topic(name))
            for tp in tps:
                anchor, last = marks.get(tp)
                has_records = broker.offsets([tp])[1][tp] > 0
                if has_records and (anchor is None or (committed.get(tp) and last is None)):
                    return False
    return True


def test_a_running_issuer_repairs_its_offsets_when_the_broker_loses_data_under_it(tmp_path: Path) -> None:
    """The same loss while the issuer runs through it: it rejoins its group at the committed offsets
    (beyond the new end), finds them within seconds and reads on from the start; completions sent after
    the loss are issued without a restart of the worker."""
    profiles, pairs = learners_and_pairs(30)
    before, after = pairs[:20], pairs[20:]
    with contextlib.ExitStack() as cleanup:
        stack, base, run = stack_and_pipeline(cleanup, tmp_path, "live", profiles)
        publish(run.settings, before)
        wait_until("the first 20 PDFs", lambda: run.done(set(before)), 120, run.workers)
        # A worker tells a rewritten log from its own by the records it marked: one check (<= 5 s) after
        # a partition's first records. The loss comes after that, as in a pipeline running for a while.
        wait_until("the issuer's and the renderer's marks", lambda: marked(run.settings), 60, run.workers)

        assert lose_broker_data(stack, base) > 0  # the workers run on
        publish(run.settings, after)
        took = wait_until(
            "the completions sent after the loss issued and rendered",
            lambda: run.done(set(pairs)),
            120,
            run.workers,
        )
        print(f"\nrunning workers repaired: 10 completions sent after the loss done in {took:.1f} s")
        run.assert_exactly_once(set(pairs))
        assert run.dead_letters() == 0
        shown = status_text(run.settings)
        assert "beyond end" not in shown
        assert run.settings.topic(run.settings.issuer_group) in shown.split("Offsets reset")[1]
