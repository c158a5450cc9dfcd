"""Faults lose nothing. While a stream of course completions flows:

1. the broker (Tansu on `s3://` storage, so its log survives) is stopped with SIGTERM and started again;
2. the S3 server (SeaweedFS) is down for 30 s while renders are due;
3. PostgreSQL (a throwaway instance of this test, not the machine's) is down for 30 s while awards are due;
4. of two issuer processes, one is killed with SIGKILL during their consumer-group rebalance;
5. the S3 server down for 5 minutes and, side by side on a separate stack and database, PostgreSQL down
   for 5 minutes: far beyond any retry limit, so the consumers must pause (and say so) instead of
   dead-lettering, and catch up within a minute of the recovery.

Afterwards every completion has exactly one award, one credential-issued event id, one certificate row and
one PDF in S3; the dead-letter topics are empty (only valid completions are published: any dead letter is
a message given up on); and the workers recovered by themselves: the test restarts only the component the
scenario stops, and a dead worker fails the test at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow
from ebackpack.adapters.storage import ObjectStore
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.demo import PipelineProbe
from ebackpack.dev.sample_data import load_profiles, rule_course_ids, synthetic_learner
from ebackpack.dev.stack import (
    MEMORY_STORAGE,
    EmbeddedStack,
    _host_port,
    _wait_for_port,
    free_port,
    signal_group,
    tansu_binary,
)
from ebackpack.dev.workers import Worker
from ebackpack.domain.rules import load_rules
from ebackpack.secret_policy import throwaway_secrets
from ebackpack.streaming.health import paused_streams
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import CREDENTIALS, MOODLE_EVENTS, RENDER_REQUESTS, dlq
from schemas import CredentialIssuedMessage, DeadLetterMessage
from schemas.moodle import Profiles
from services.gateway.profiles import store_profiles
from services.gateway.publisher import MoodleEventPublisher
from tests.builders import completion

pytestmark = pytest.mark.e2e

COMPLETIONS = 150  # per scenario: the 2-core budget of the module is ~5 min, three 30 s outages included
STREAM_SECONDS = 15.0  # the completions are published over this long (at least), the fault inside it
OUTAGE = 30.0  # S3 and PostgreSQL
BROKER_DOWN = 5.0
DONE_WITHIN = 150.0  # after the fault: every wait is bounded
LONG_OUTAGE = 300.0  # S3 and PostgreSQL, side by side: far beyond the ~56 s the consumers used to retry
LONG_COMPLETIONS = 60  # per long-outage scenario: the module's wall time stays ~8 min longer, not 20
RECOVERED_WITHIN = 60.0  # after a long outage ends: every credential and PDF stored
STALLED = 20.0  # no progress for this long and dead letters exist: fail at once
WHEN = datetime(2026, 1, 12, tzinfo=UTC)

Pair = tuple[int, int]  # (learner, course): one completion, one award


# --- what is published ---------------------------------------------------------------------------------


def stream_data(count: int) -> tuple[Profiles, list[tuple[bytes, bytes]], frozenset[Pair]]:
    """`count` distinct completions of courses that issue a certificate, by synthetic learners."""
    courses = rule_course_ids()
    learners = [synthetic_learner(i) for i in range(math.ceil(count / len(courses)))]
    pairs = [(learner.id, course) for learner in learners for course in courses][:count]
    messages = [(str(learner).encode(), completion(learner, course, WHEN)) for learner, course in pairs]
    return Profiles(users=learners, courses=load_profiles().courses), messages, frozenset(pairs)


def rules_with_certificates(settings: Settings, target: Path) -> Path:
    target.write_text(
        settings.rules_file.read_text(encoding="utf-8").replace("certificate = false", "certificate = true")
    )
    return target


class Stream(threading.Thread):
    """Publishes the completions in small batches at a steady pace, as the gateway would. A batch the
    broker did not take is sent again (the gateway answers 503 and Moodle retries): redeliveries are
    allowed, the issuer deduplicates them.

    The second half waits for `release()`, which the test calls once its fault has begun: the fault
    falls inside the stream however slowly the workers started or the machine ran."""

    def __init__(
        self, settings: Settings, messages: list[tuple[bytes, bytes]], seconds: float, batch: int = 10
    ):
        super().__init__(name="completion-stream", daemon=True)
        self.settings = settings
        self.batches = [messages[i : i + batch] for i in range(0, len(messages), batch)]
        self.held_from = len(self.batches) // 2
        self.released = threading.Event()
        self.pause = seconds / len(self.batches)
        self.ends: dict[int, int] = {}
        self.sent = 0
        self.resent: list[str] = []
        self.error: BaseException | None = None

    def release(self) -> None:
        self.released.set()

    def run(self) -> None:
        publisher: MoodleEventPublisher | None = None
        try:
            for index, batch in enumerate(self.batches):
                if index == self.held_from:
                    self.released.wait()
                give_up = time.monotonic() + 120
                while True:
                    try:
                        publisher = publisher or MoodleEventPublisher(self.settings)
                        for partition, end in publisher.publish(batch).items():
                            self.ends[partition] = max(self.ends.get(partition, 0), end)
                        break
                    except Exception as exc:
                        self.resent.append(f"{type(exc).__name__}: {exc}")
                        if publisher is not None:
                            with contextlib.suppress(Exception):
                                publisher.close()
                            publisher = None
                        if time.monotonic() > give_up:
                            raise
                        time.sleep(1.0)
                self.sent += len(batch)
                time.sleep(self.pause)
        except BaseException as exc:  # reported by the test thread
            self.error = exc
        finally:
            if publisher is not None:
                with contextlib.suppress(Exception):
                    publisher.close()

    @property
    def done(self) -> bool:
        return not self.is_alive()


# --- a stack whose components can be stopped and started again ------------------------------------------


@dataclass
class FaultStack(EmbeddedStack):
    """The embedded stack; a component stopped with `stop_component` comes back with `start_component` on
    the same command line (ports, data directory). `broker_bucket`: the broker keeps its log in that
    bucket on the stack's S3 server (Tansu's `s3://` storage engine) rather than in memory, so a broker
    restart keeps topics, messages and committed offsets."""

    broker_bucket: str | None = None
    launched: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)

    def _spawn(
        self, name: str, args: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        self.launched[name] = (args, env or {})
        return super()._spawn(name, args, env)

    def _start_broker(self, timeout: float) -> None:
        if self.broker_bucket is None:
            return super()._start_broker(timeout)
        ObjectStore(self.settings.model_copy(update={"s3_bucket": self.broker_bucket})).ensure_bucket()
        host, port = _host_port(self.settings.kafka_bootstrap)
        url = f"tcp://{host}:{port}"
        env = {
            "AWS_ACCESS_KEY_ID": self.settings.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.settings.s3_secret_key,
            "AWS_DEFAULT_REGION": self.settings.s3_region,
            "AWS_ENDPOINT": self.settings.s3_endpoint,
            "AWS_ALLOW_HTTP": "true",
        }
        proc = self._spawn(
            "tansu",
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                f"s3://{self.broker_bucket}/",
            ],
            env,
        )
        _wait_for_port(host, port, proc, "Tansu broker", timeout)

    def stop_component(self, name: str) -> None:
        proc = self.processes.pop(name)
        signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def start_component(self, name: str, timeout: float = 60.0) -> None:
        args, env = self.launched[name]
        proc = self._spawn(name, args, env)
        if name == "tansu":
            host, port = _host_port(self.settings.kafka_bootstrap)
            _wait_for_port(host, port, proc, "Tansu broker", timeout)
        else:
            host, port = _host_port(self.settings.s3_endpoint.removeprefix("http://"))
            _wait_for_port(host, port, proc, "SeaweedFS S3", timeout)
            self._wait_for_bucket(proc, timeout)


@contextlib.contextmanager
def own_stack(
    tmp_path: Path, broker_bucket: str | None = None, broker_storage: str | None = None
) -> Iterator[FaultStack]:
    """A stack of this test alone (the session's shared stack must not be stopped), on free ports.
    `broker_storage=MEMORY_STORAGE`: the broker keeps its log apart from the S3 server, as a production
    Kafka does, so stopping S3 stops only the object store the workers use."""
    base = Settings(
        data_dir=tmp_path / "stack",
        embedded=False,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        s3_endpoint=f"http://127.0.0.1:{free_port()}",
        **throwaway_secrets(),
    )
    stack = FaultStack(base, broker_bucket=broker_bucket)
    if broker_storage is not None:
        stack.broker_storage = broker_storage
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def on_stack(stack: FaultStack, tmp_path: Path) -> Settings:
    return stack.settings.model_copy(
        update={
            "data_dir": tmp_path / "data",
            "s3_bucket": "faults",
            "database_url": f"sqlite:///{tmp_path / 'ebackpack.db'}",
        }
    )


def group_state(settings: Settings, group: str) -> tuple[str, int]:
    """(state, members) of a consumer group. Tansu says `Unknown` while a rebalance is under way."""

    async def describe() -> tuple[str, int]:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap.split(","), request_timeout_ms=5000
        )
        await admin.start()
        try:
            found = (await admin.describe_consumer_groups([group]))[0].groups[0]
            return str(found[2]), len(found[5])
        finally:
            await admin.close()

    return asyncio.run(describe())


# --- a throwaway PostgreSQL ----------------------------------------------------------------------------


class ThrowawayPostgres:
    """A PostgreSQL server of this test alone (initdb + pg_ctl in a temp dir, on a free port), so it can be
    stopped without touching the machine's. As root, it runs as the `postgres` user (initdb refuses root)."""

    def __init__(self) -> None:
        found = sorted(
            Path("/usr/lib/postgresql").glob("*/bin/initdb"),
            key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
        )
        if not found:
            pytest.skip("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin")
        self.bin = found[-1].parent
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no `postgres` user to run initdb as")
            self.user = "postgres"
        self.dir = Path(tempfile.mkdtemp(prefix="ebackpack-pg-"))
        if self.user:
            shutil.chown(self.dir, self.user, self.user)
        self.port = free_port()
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin / tool), *args],
            user=self.user,
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert done.returncode == 0, f"{tool} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.dir / "data"),
            "-l",
            str(self.dir / "postgres.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", mode, "-w", "-t", "60", "stop")
        self.running = False

    def log_tail(self, lines: int = 15) -> str:
        path = self.dir / "postgres.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def remove(self) -> None:
        if self.running:
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


# --- one pipeline run ----------------------------------------------------------------------------------


@dataclass
class Run:
    """The workers on one configuration, the completions streamed to them and the checks afterwards."""

    settings: Settings
    sessions: sessionmaker[Session]
    probe: PipelineProbe
    expected: frozenset[Pair]
    messages: list[tuple[bytes, bytes]]
    workers: dict[str, Worker] = field(default_factory=dict)
    killed: dict[str, Worker] = field(default_factory=dict)  # by the test: their death is the fault
    stream: Stream | None = None
    notes: list[str] = field(default_factory=list)
    _progress: tuple[int, ...] = ()
    _since: float = 0.0

    @classmethod
    def prepare(cls, settings: Settings, tmp_path: Path, count: int = COMPLETIONS) -> Run:
        settings = settings.model_copy(
            update={"rules_file": rules_with_certificates(settings, tmp_path / "rules.toml")}
        )
        profiles, messages, expected = stream_data(count)
        sessions = prepare(settings)
        store_profiles(sessions, profiles)
        probe = PipelineProbe(settings, sessions, load_rules(settings.rules_file))
        return cls(settings, sessions, probe, expected, messages)

    def kill(self, name: str) -> None:
        self.killed[name] = self.workers.pop(name)
        self.killed[name].kill()

    def start(self, *names: str) -> None:
        for name in names:
            self.workers[name] = Worker(name, self.settings)
            self.workers[name].start()

    def wait_ready(self) -> None:
        """Until every worker has joined its consumer group: the stream starts then, so the fault falls
        inside it however long the workers took to start."""
        members = Counter(name.split("-")[0] for name in self.workers)
        groups = {
            "issuer": self.settings.topic(self.settings.issuer_group),
            "renderer": self.settings.topic("renderer"),
        }
        for service, count in members.items():
            self.wait_until(
                f"{count} {service}(s) in their consumer group",
                lambda s=service, n=count: group_state(self.settings, groups[s]) == ("Stable", n),
                90,
            )

    def publish(self, seconds: float = STREAM_SECONDS) -> Stream:
        self.stream = Stream(self.settings, self.messages, seconds)
        self.stream.start()
        return self.stream

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(text)

    def dead_workers(self) -> list[str]:
        return [
            f"{name} (exit code {w.process.returncode if w.process else '?'})"
            for name, w in self.workers.items()
            if not w.running
        ]

    def wait_until(self, what: str, ready: Callable[[], bool], seconds: float) -> None:
        """Polls `ready()` (DB / broker errors count as not yet); fails with the diagnosis on a dead
        worker or at the deadline."""
        deadline = time.monotonic() + seconds
        last_error = ""
        while True:
            try:
                if ready():
                    return
            except Exception as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            dead = self.dead_workers()
            if dead:
                pytest.fail(f"worker(s) {', '.join(dead)} died while waiting for {what}\n{self.diagnosis()}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"timed out after {seconds:.0f} s waiting for {what}"
                    f"{f' (last error: {last_error})' if last_error else ''}\n{self.diagnosis()}"
                )
            time.sleep(0.5)

    def awards_at_least(self, count: int) -> bool:
        return self.probe.counts()[0] >= count

    def certificates_at_least(self, count: int) -> bool:
        return self.probe.counts()[2] >= count

    def done(self) -> bool:
        assert self.stream is not None
        if self.stream.error is not None:
            pytest.fail(f"the completion stream failed: {self.stream.error!r}\n{self.diagnosis()}")
        self.stream.release()  # whatever the scenario did, the rest of the stream is due now
        if not self.stream.done:
            return False
        position = self.probe.issuer_position()
        consumed = all(position.get(p, 0) >= end for p, end in self.stream.ends.items())
        awards, wanted, stored, pending = self.probe.counts()
        if consumed and awards >= len(self.expected) and stored >= wanted and pending == 0:
            return True
        # Stalled for a while with dead letters: those messages will not come back, fail now.
        progress = (sum(position.values()), awards, stored, pending)
        if progress != self._progress:
            self._progress, self._since = progress, time.monotonic()
        elif time.monotonic() - self._since > STALLED and self.dead_letters():
            pytest.fail(
                f"no progress for {STALLED:.0f} s and messages were dead-lettered\n{self.diagnosis()}"
            )
        return False

    def wait_until_done(self, seconds: float = DONE_WITHIN) -> float:
        started = time.monotonic()
        self.wait_until("every completion issued and rendered", self.done, seconds)
        took = time.monotonic() - started
        self.note(f"pipeline done {took:.1f} s after the fault")
        return took

    def hold_outage(self, seconds: float, pausing: str) -> None:
        """The dependency stays down `seconds`: meanwhile no worker dies and nothing is dead-lettered, and
        the `pausing` consumer reports its pause where `ebackpack status` reads it."""
        until = time.monotonic() + seconds
        seen: set[str] = set()
        while time.monotonic() < until:
            dead = self.dead_workers()
            if dead:
                pytest.fail(f"worker(s) {', '.join(dead)} died during the outage\n{self.diagnosis()}")
            seen |= {p.consumer for p in paused_streams(self.settings.data_dir)}
            time.sleep(min(5.0, max(until - time.monotonic(), 0.0)))
        self.assert_no_dead_letters()
        assert pausing in seen, f"{pausing} never reported a pause during the outage (seen: {seen})"
        self.note(f"paused during the outage, as `ebackpack status` shows: {sorted(seen)}")

    # --- the checks

    def dead_letters(self) -> list[DeadLetterMessage]:
        topics = [self.settings.topic(dlq(t)) for t in (MOODLE_EVENTS, RENDER_REQUESTS)]
        return [
            DeadLetterMessage.model_validate_json(r.value)
            for r in read_topics(self.settings, topics, idle_ms=1000)
        ]

    def assert_no_dead_letters(self) -> None:
        letters = self.dead_letters()
        assert not letters, (
            f"{len(letters)} message(s) dead-lettered (only valid completions were "
            f"published, so each was given up on):\n{describe_letters(letters)}"
        )

    def assert_exactly_once(self) -> None:
        """One award per completion, one credential-issued event id per credential, one certificate row
        and one PDF in S3 per credential: none missing, none twice."""
        count = len(self.expected)
        with self.sessions() as s:
            awards = s.execute(select(AwardRow.credential_id, AwardRow.learner_id, AwardRow.course_id)).all()
            certificates = s.execute(select(CertificateRow.credential_id, CertificateRow.object_key)).all()
        pairs = Counter((learner, course) for _c, learner, course in awards)
        missing = sorted(self.expected - set(pairs))
        twice = sorted(p for p, n in pairs.items() if n > 1)
        assert not missing and not twice and len(awards) == count, (
            f"{len(awards)} awards for {count} completions; missing {missing[:20]}, twice {twice[:20]}"
        )
        credential_ids = {c for c, _l, _k in awards}

        rows = Counter(c for c, _k in certificates)
        assert set(rows) == credential_ids and len(certificates) == count, (
            f"{len(certificates)} certificate rows for {count} credentials; without one: "
            f"{sorted(credential_ids - set(rows))[:10]}, "
            f"more than one: {[c for c, n in rows.items() if n > 1][:10]}"
        )
        objects = Counter(key.split("/")[1] for key in ObjectStore(self.settings).keys("certificates/"))
        assert set(objects) == credential_ids and sum(objects.values()) == count, (
            f"{sum(objects.values())} PDFs in S3 for {count} credentials; without one: "
            f"{sorted(credential_ids - set(objects))[:10]}, more than one: "
            f"{[c for c, n in objects.items() if n > 1][:10]}"
        )

        ids_by_credential: dict[str, set[str]] = defaultdict(set)
        for record in read_topics(self.settings, [self.settings.topic(CREDENTIALS)], idle_ms=1000):
            event = CredentialIssuedMessage.model_validate_json(record.value)
            ids_by_credential[event.data.credential_id].add(event.id)
        unannounced = sorted(credential_ids - set(ids_by_credential))
        assert not unannounced, f"{len(unannounced)} credentials never announced: {unannounced[:10]}"
        several = {c: ids for c, ids in ids_by_credential.items() if len(ids) > 1}
        assert not several, f"credentials announced under several event ids: {list(several.items())[:5]}"
        assert set(ids_by_credential) == credential_ids

    # --- what to print when something is wrong

    def diagnosis(self) -> str:
        lines = [*self.notes]
        try:
            awards, wanted, stored, pending = self.probe.counts()
            lines.append(
                f"awards {awards}/{len(self.expected)}, PDFs stored {stored}/{wanted}, "
                f"unannounced outbox events {pending}"
            )
            with self.sessions() as s:
                have = {
                    (learner, course)
                    for learner, course in s.execute(select(AwardRow.learner_id, AwardRow.course_id))
                }
                unrendered = s.scalars(
                    select(AwardRow.credential_id).where(
                        AwardRow.credential_id.not_in(select(CertificateRow.credential_id))
                    )
                ).all()
            missing = sorted(self.expected - have)
            lines.append(f"completions without an award ({len(missing)}): {missing[:20]}")
            lines.append(f"awards without a certificate ({len(unrendered)}): {list(unrendered)[:10]}")
        except Exception as exc:
            lines.append(f"database not readable: {exc}")
        if self.stream is not None:
            lines.append(
                f"stream: {self.stream.sent}/{len(self.messages)} published, "
                f"{len(self.stream.resent)} batch(es) sent again, ends {self.stream.ends}"
            )
            with contextlib.suppress(Exception):
                lines.append(f"issuer committed offsets: {self.probe.issuer_position()}")
        try:
            letters = self.dead_letters()
            lines.append(f"dead letters ({len(letters)}):\n{describe_letters(letters)}")
        except Exception as exc:
            lines.append(f"dead-letter topics not readable: {exc}")
        for name, worker in {**self.killed, **self.workers}.items():
            lines.append(f"--- {name} log ({worker.log_path}), last lines:\n{tail(worker.log_path)}")
        return "\n".join(lines)


def describe_letters(letters: list[DeadLetterMessage]) -> str:
    reasons = Counter(f"{d.data.consumer}: {d.data.error_type}: {d.data.reason[:200]}" for d in letters)
    return "\n".join(f"  {n} x {reason}" for reason, n in reasons.most_common(10))


def tail(path: Path, lines: int = 12) -> str:
    """The last lines of a worker's log, after the reason faust gave if the worker crashed."""
    if not path.exists():
        return "(no log)"
    text = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    crashes = [line[:600] for line in text if "Crashed reason=" in line]
    if crashes:  # where in our code: the frames outside the libraries
        crashes += sorted(
            {
                line.strip()
                for line in text
                if line.lstrip().startswith('File "')
                and "site-packages" not in line
                and "/lib/python3" not in line
            }
        )
    return "\n".join([*crashes, *(line[:300] for line in text[-lines:])])


@contextlib.contextmanager
def running(run: Run) -> Iterator[Run]:
    try:
        yield run
    finally:
        if run.stream is not None:
            run.stream.release()
            run.stream.join(timeout=30)
        run.stop()


# --- the scenarios -------------------------------------------------------------------------------------


def test_broker_restart_mid_stream(tmp_path: Path) -> None:
    """Tansu keeps its log in S3; SIGTERM while events flow, started again on the same port after 5 s.
    Workers and publisher reconnect by themselves."""
    with (
        own_stack(tmp_path, broker_bucket="tansu") as stack,
        running(Run.prepare(on_stack(stack, tmp_path), tmp_path)) as run,
    ):
        run.start("issuer", "renderer")
        run.wait_ready()
        stream = run.publish()
        run.wait_until("the first awards", lambda: run.awards_at_least(COMPLETIONS // 5), 90)
        run.note(f"broker stopping: {stream.sent} completions published, {run.probe.counts()[0]} awards")
        stopping = time.monotonic()
        stack.stop_component("tansu")  # Tansu drains for a few seconds after SIGTERM, then exits
        stream.release()
        run.note(
            f"broker exited {time.monotonic() - stopping:.1f} s after SIGTERM, "
            f"{stream.sent} published; down for {BROKER_DOWN:.0f} s"
        )
        time.sleep(BROKER_DOWN)
        stack.start_component("tansu")
        run.note(
            f"broker started again: {stream.sent} published so far, {len(stream.resent)} batch(es) sent again"
        )
        run.wait_until_done()
        run.assert_exactly_once()
        run.assert_no_dead_letters()
        assert run.dead_workers() == []


def test_s3_outage_of_30_seconds_while_renders_are_due(tmp_path: Path) -> None:
    """SeaweedFS stopped for 30 s while render requests keep coming, started again on the same ports and
    data: the renders are retried, no PDF lost, none twice."""
    with (
        own_stack(tmp_path, broker_storage=MEMORY_STORAGE) as stack,
        running(Run.prepare(on_stack(stack, tmp_path), tmp_path)) as run,
    ):
        run.start("issuer", "renderer")
        run.wait_ready()
        stream = run.publish()
        run.wait_until("the first PDFs", lambda: run.certificates_at_least(COMPLETIONS // 10), 90)
        run.note(f"S3 stopping: {stream.sent} completions published, {run.probe.counts()[2]} PDFs stored")
        stopping = time.monotonic()
        stack.stop_component("seaweedfs")
        stream.release()
        run.note(
            f"S3 exited {time.monotonic() - stopping:.1f} s after SIGTERM, {stream.sent} published; "
            f"down for {OUTAGE:.0f} s"
        )
        time.sleep(OUTAGE)
        _awards, wanted, stored, _pending = run.probe.counts()
        assert wanted > stored, "no render was due during the outage"
        run.note(f"S3 starts again: {wanted - stored} renders due")
        stack.start_component("seaweedfs")
        run.wait_until_done()
        run.assert_exactly_once()
        run.assert_no_dead_letters()
        assert run.dead_workers() == []


def test_postgresql_outage_of_30_seconds_while_awards_are_due(
    settings: Settings, throwaway_postgres: ThrowawayPostgres, tmp_path: Path
) -> None:
    """The workers' own PostgreSQL stopped (fast shutdown) for 30 s while completions keep coming, then
    started again: awards and renders are retried, nothing lost, nothing twice."""
    pg = throwaway_postgres
    settings = settings.model_copy(update={"database_url": pg.url})
    with running(Run.prepare(settings, tmp_path)) as run:
        run.start("issuer", "renderer")
        run.wait_ready()
        stream = run.publish()
        run.wait_until("the first awards", lambda: run.awards_at_least(COMPLETIONS // 5), 90)
        awards = run.probe.counts()[0]
        assert awards < len(run.expected), "every award was made before the outage"
        run.note(f"PostgreSQL stopped: {stream.sent} published, {awards} awards")
        pg.stop()
        stream.release()
        time.sleep(OUTAGE)
        run.note(f"PostgreSQL starts again: {stream.sent} published")
        try:
            pg.start()
        finally:
            run.notes.append(f"--- PostgreSQL log:\n{pg.log_tail()}")
        run.wait_until_done()
        run.assert_exactly_once()
        run.assert_no_dead_letters()
        assert run.dead_workers() == []


def test_kill_9_during_an_issuer_rebalance(settings: Settings, postgres_url: str, tmp_path: Path) -> None:
    """Issuer A runs; issuer B joins (a rebalance of `moodle.events`); A is killed with SIGKILL while the
    group rebalances and events flow; a replacement C joins. Exactly-once in effect."""
    settings = settings.model_copy(update={"database_url": postgres_url})
    group = settings.topic(settings.issuer_group)
    with running(Run.prepare(settings, tmp_path)) as run:
        run.start("issuer-a", "renderer")
        run.wait_ready()
        stream = run.publish(STREAM_SECONDS + 5)  # B's start and join come first
        run.wait_until("the first awards", lambda: run.awards_at_least(COMPLETIONS // 10), 90)
        run.start("issuer-b")
        seen: list[tuple[str, int]] = []

        def rebalancing() -> bool:
            seen.append(group_state(settings, group))
            return seen[-1][0] != "Stable"

        run.wait_until("issuer B's join to start a rebalance", rebalancing, 60)
        awards = run.probe.counts()[0]
        run.kill("issuer-a")
        stream.release()
        run.note(
            f"issuer A killed during the rebalance (group state, members: {seen[-1]}), "
            f"{stream.sent} published, {awards} awards"
        )
        run.start("issuer-c")
        run.wait_until_done()
        run.assert_exactly_once()
        run.assert_no_dead_letters()
        assert run.dead_workers() == []
        run.wait_until(
            "a stable group of issuers B and C", lambda: group_state(settings, group) == ("Stable", 2), 30
        )


def s3_down_for_5_minutes(tmp_path: Path) -> float:
    """SeaweedFS stopped for 5 minutes while renders are due: the renderer pauses on its batch. Returns
    the seconds from S3's restart until every credential and PDF is stored."""
    with (
        own_stack(tmp_path, broker_storage=MEMORY_STORAGE) as stack,
        running(Run.prepare(on_stack(stack, tmp_path), tmp_path, LONG_COMPLETIONS)) as run,
    ):
        run.start("issuer", "renderer")
        run.wait_ready()
        stream = run.publish()
        run.wait_until("the first PDFs", lambda: run.certificates_at_least(LONG_COMPLETIONS // 10), 90)
        stack.stop_component("seaweedfs")
        stream.release()
        run.note(f"S3 down for {LONG_OUTAGE:.0f} s: {stream.sent} published, {run.probe.counts()[2]} PDFs")
        run.hold_outage(LONG_OUTAGE, "renderer")
        _awards, wanted, stored, _pending = run.probe.counts()
        assert wanted > stored, "no render was due during the outage"
        stack.start_component("seaweedfs")
        took = run.wait_until_done(RECOVERED_WITHIN)
        run.assert_exactly_once()
        run.assert_no_dead_letters()
        assert run.dead_workers() == []
        return took


def database_down_for_5_minutes(settings: Settings, pg: ThrowawayPostgres, tmp_path: Path) -> float:
    """The workers' PostgreSQL stopped for 5 minutes while completions keep coming: issuer and renderer
    pause. Returns the seconds from the restart until every credential and PDF is stored."""
    settings = settings.model_copy(update={"database_url": pg.url, "data_dir": tmp_path / "data"})
    with running(Run.prepare(settings, tmp_path, LONG_COMPLETIONS)) as run:
        run.start("issuer", "renderer")
        run.wait_ready()
        stream = run.publish()
        run.wait_until("the first awards", lambda: run.awards_at_least(LONG_COMPLETIONS // 5), 90)
        assert run.probe.counts()[0] < len(run.expected), "every award was made before the outage"
        pg.stop()
        stream.release()
        run.note(f"PostgreSQL down for {LONG_OUTAGE:.0f} s: {stream.sent} published")
        try:
            run.hold_outage(LONG_OUTAGE, "issuer")
        finally:
            pg.start()
            run.notes.append(f"--- PostgreSQL log:\n{pg.log_tail()}")
        took = run.wait_until_done(RECOVERED_WITHIN)
        run.assert_exactly_once()
        run.assert_no_dead_letters()
        assert run.dead_workers() == []
        return took


def test_s3_and_database_outages_of_5_minutes_pause_instead_of_dead_lettering(
    settings: Settings, throwaway_postgres: ThrowawayPostgres, tmp_path: Path
) -> None:
    """Both outages at once, on stacks and databases that share nothing (the S3 scenario has its own
    stack and SQLite, the database scenario the session's stack and its own PostgreSQL): 0 dead letters,
    0 lost, 0 duplicated, everything stored within a minute of the recovery."""
    (tmp_path / "s3").mkdir()
    (tmp_path / "db").mkdir()
    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="outage") as pool:
        s3 = pool.submit(s3_down_for_5_minutes, tmp_path / "s3")
        database = pool.submit(database_down_for_5_minutes, settings, throwaway_postgres, tmp_path / "db")
        took = {"S3": s3.result(), "PostgreSQL": database.result()}
    print(
        "; ".join(
            f"{what} down {LONG_OUTAGE:.0f} s: everything stored {seconds:.1f} s after it was back"
            for what, seconds in took.items()
        )
    )
