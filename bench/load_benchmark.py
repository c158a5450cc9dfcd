"""Sustained load through the whole e-Backpack pipeline: can it keep up with N completions per second?

    .venv/bin/python bench/load_benchmark.py [--rate 100] [--seconds 300] [--issuers 1] [--renderers 2]
                                             [--certificates | --no-certificates] [--json] [--keep]

Moodle course completions go to `moodle.events` at a steady rate (a token bucket, the gateway's own
publisher) for a stated time, through the issuer workers (award, signed credentials, outbox ->
`credentials` + `certificates.render`) and the renderer workers (PDF -> S3). Each completion is a
distinct (learner, course) pair of a course whose rule issues a certificate, so it earns exactly one
credential and needs exactly one PDF. A completion is done when its PDF is stored AND its
credential.issued event is on `credentials`; its latency runs from the moment it was handed to the
producer. The report gives latency percentiles, the publish and completion rates, the backlog when
publishing stopped and how long it took to drain, whether the rate was sustained (and if not, the rate
the pipeline did sustain), and the memory (RSS) and CPU of every worker, the broker and the S3 server.

Progress goes to stderr, the report to stdout (to stderr too with `--json`, which puts one JSON object
on stdout). See bench/README.md, section "Load", for how to read the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import math
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from aiokafka.admin import AIOKafkaAdminClient
from common import (
    CLOCK,
    LOAD_BEFORE,
    BenchError,
    Report,
    add_broker_storage_option,
    add_worker_options,
    broker_storage,
    log_tail,
    run_benchmark,
    say,
)
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow, Learner, OutboxRow
from ebackpack.bootstrap import prepare
from ebackpack.config import SAMPLE_DIR, Settings
from ebackpack.dev.sample_data import (
    DEFAULT_SITE,
    SYNTHETIC_FIRST_ID,
    Message,
    default_dataset,
    load_profiles,
    synthetic_learner,
)
from ebackpack.dev.stack import EmbeddedStack, StackError, free_port
from ebackpack.dev.workers import Worker, running
from ebackpack.domain.rules import load_rules
from ebackpack.secret_policy import throwaway_secrets
from ebackpack.streaming.errors import InvalidMessage
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import CREDENTIALS, MOODLE_EVENTS, RENDER_REQUESTS, RENDERED, dlq
from schemas import CredentialIssuedMessage
from schemas.envelope import deterministic_id
from schemas.moodle import COURSE_COMPLETED, Profiles
from services.gateway.profiles import store_profiles
from services.gateway.publisher import MoodleEventPublisher
from services.issuer.domain import NotALearnerCompletion, learner_completion
from services.issuer.service import parse_moodle_message

SAMPLE_RULES = SAMPLE_DIR / "rules.toml"
RENDERER_GROUP = "renderer"  # services.renderer.agent.CONSUMER: the renderer's consumer group
WARMUP = 4  # completions through the whole pipeline before the clock starts (start + group join)
BURST_SECONDS = 0.2  # token bucket depth: at most this many seconds' worth of completions in one send
MAX_BATCH = 500  # completions handed to the publisher in one call
SAMPLE_EVERY = 1.0  # seconds between memory / CPU samples
COUNT_EVERY = 2.0  # seconds between database counts (progress and the end of the drain)
SAY_EVERY = 5.0  # seconds between progress lines
SUSTAINED_GROWTH = 0.05  # the backlog may grow by at most this share of the offered rate per second
MIN_DRAIN = 10.0  # seconds: shorter drains give no drain rate
WINDOWS = 10  # latency by publish time: this many equal windows of the publishing phase
SERIES_POINTS = 120  # backlog over time: at most this many points in the JSON
MB = 1024 * 1024


# --- the plan: which completions, at which rate ------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    rate: float
    seconds: float
    courses: tuple[int, ...]  # rule courses the completions cycle through
    pdf_courses: frozenset[int]  # those whose rule issues a certificate

    @property
    def total(self) -> int:
        return max(1, round(self.rate * self.seconds))

    @property
    def learners(self) -> int:
        """Learners of the measured completions; warm-up learners come after them."""
        return math.ceil(self.total / len(self.courses))

    def pair(self, index: int) -> tuple[int, int]:
        """(learner id, course id) of the index-th completion: every pair distinct."""
        learner, course = divmod(index, len(self.courses))
        return SYNTHETIC_FIRST_ID + learner, self.courses[course]

    def warmup_pair(self, index: int) -> tuple[int, int]:
        return SYNTHETIC_FIRST_ID + self.learners + index, self.courses[index % len(self.courses)]

    def needs_pdf(self, index: int) -> bool:
        return self.pair(index)[1] in self.pdf_courses


class Completions:
    """Course completions as the gateway publishes them, on the sample data set's envelope."""

    def __init__(self, site: str = DEFAULT_SITE) -> None:
        self.site = site
        for _key, value in default_dataset().messages:
            envelope = json.loads(value)
            if isinstance(envelope, dict) and envelope.get("data", {}).get("eventname") == COURSE_COMPLETED:
                self.template: dict[str, Any] = envelope
                break
        else:
            raise BenchError("the sample data set has no course completion")
        self.serial = 0

    def message(self, learner: int, course: int) -> Message:
        self.serial += 1
        now = int(time.time())
        data = {
            **self.template["data"],
            "objectid": 10_000_000 + self.serial,
            "contextid": course + 1145,
            "contextinstanceid": course,
            "userid": learner,
            "courseid": course,
            "relateduserid": learner,
            "other": None,
            "timecreated": now,
        }
        envelope = {
            **self.template,
            "data": data,
            "subject": str(learner),
            "id": deterministic_id(self.site, COURSE_COMPLETED, data["objectid"], learner, now),
            "time": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
        }
        return str(learner).encode("ascii"), json.dumps(envelope, separators=(",", ":")).encode()

    def check(self, learner: int, course: int) -> None:
        """The issuer must read a message of ours as exactly this learner's completion of this course."""
        try:
            pair = learner_completion(parse_moodle_message(self.message(learner, course)[1]).data)
        except (InvalidMessage, NotALearnerCompletion) as exc:
            raise BenchError(f"a generated completion is not one to the issuer: {exc}") from exc
        if pair != (learner, course):
            raise BenchError(f"a generated completion reads as {pair}, not {(learner, course)}")


def rules_and_courses(tmp: Path, certificates: bool) -> tuple[Path, tuple[int, ...], frozenset[int]]:
    """With certificates: the sample rules, courses whose rule issues a PDF. Without: a copy of the
    sample rules where no rule issues one, every rule course."""
    if certificates:
        rules = load_rules(SAMPLE_RULES)
        courses = tuple(sorted(r.course_id for r in rules.rules if r.certificate))
        if not courses:
            raise BenchError(f"no rule of {SAMPLE_RULES} issues a certificate")
        return SAMPLE_RULES, courses, frozenset(courses)
    path = tmp / "rules-no-certificates.toml"
    path.write_text(
        SAMPLE_RULES.read_text(encoding="utf-8").replace("certificate = true", "certificate = false")
    )
    rules = load_rules(path)
    if any(rule.certificate for rule in rules.rules):
        raise BenchError(f"{path} still asks for certificates: has rules.toml changed its layout?")
    return path, tuple(sorted({r.course_id for r in rules.rules})), frozenset()


def store_learners(sessions: sessionmaker[Session], plan: Plan) -> None:
    """Profiles before completions (as the gateway does): the measured learners and the warm-up ones.
    One bulk insert into the fresh database; the courses through the gateway's own `store_profiles`."""
    learners = [synthetic_learner(i) for i in range(plan.learners + WARMUP)]
    with sessions.begin() as session:
        session.execute(
            insert(Learner),
            [
                {
                    "id": u.id,
                    "firstname": u.firstname,
                    "lastname": u.lastname,
                    "email": u.email,
                    "lang": u.lang,
                }
                for u in learners
            ],
        )
    store_profiles(sessions, Profiles(users=[], courses=load_profiles().courses))


# --- workers and the stack ---------------------------------------------------------------------------


def stack_settings(tmp: Path) -> Settings:
    # A dict: without pydantic's mypy plugin, mypy takes `Field(default, ...)` fields for required ones.
    fields: dict[str, Any] = {
        "data_dir": tmp / "stack",
        "embedded": False,
        "kafka_bootstrap": f"127.0.0.1:{free_port()}",
        "s3_endpoint": f"http://127.0.0.1:{free_port()}",
        **throwaway_secrets(),
    }
    return Settings(**fields)


def run_settings(stack: Settings, tmp: Path, rules_file: Path) -> Settings:
    return Settings(
        **{
            **stack.model_dump(),
            "data_dir": tmp / "load",
            "topic_prefix": "load.",
            "s3_bucket": "bench-load",
            "rules_file": rules_file,
            "database_url": f"sqlite:///{tmp / 'load' / 'ebackpack.db'}",
        }
    )


def check_alive(workers: list[Worker], what: str) -> None:
    dead = [w for w in workers if not w.running]
    if dead:
        raise BenchError(f"{dead[0].name} stopped {what}" + log_tail(dead[0]))


async def _group_state(settings: Settings, group: str) -> tuple[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    # DescribeGroupsResponse: groups = [(error_code, group_id, state, protocol_type, protocol, members..)]
    for response in responses:
        for described in response.groups:
            if described[1] == group:
                return str(described[2]), len(described[5])
    return "Unknown", 0


def group_state(settings: Settings, group: str) -> tuple[str, int]:
    """(state, members) of a consumer group; ("Unknown", 0) when the broker cannot say."""
    try:
        return asyncio.run(asyncio.wait_for(_group_state(settings, group), 10))
    except Exception:  # an answer the client cannot parse, a timeout: the warm-up then just waits longer
        return "Unknown", 0


# --- database counts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    awards: int = 0
    sent: int = 0  # credential.issued events acknowledged by the broker (outbox `sent_at`)
    pdfs: int = 0

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.awards - other.awards, self.sent - other.sent, self.pdfs - other.pdfs)


def count_rows(sessions: sessionmaker[Session], credentials_topic: str) -> Counts:
    with sessions() as s:
        awards = s.scalar(select(func.count()).select_from(AwardRow)) or 0
        sent = (
            s.scalar(
                select(func.count())
                .select_from(OutboxRow)
                .where(OutboxRow.topic == credentials_topic, OutboxRow.sent_at.is_not(None))
            )
            or 0
        )
        pdfs = s.scalar(select(func.count(func.distinct(CertificateRow.credential_id)))) or 0
    return Counts(awards, sent, pdfs)


def epoch(moment: datetime) -> float:
    """Seconds since the epoch of a timestamp a worker wrote (SQLite gives them back naive, in UTC)."""
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).timestamp()


# --- memory and CPU of every process, sampled in a thread --------------------------------------------


@dataclass
class ProcessStats:
    name: str
    pid: int
    rss_start: int = 0  # bytes, at the start of publishing
    rss_peak: int = 0  # bytes, from the start of publishing to the end of the drain
    rss_end: int = 0
    cpu_start: float = 0.0  # user + system seconds of the process tree
    cpu_end: float = 0.0
    gone: bool = False
    series: list[tuple[float, int]] = field(default_factory=list)  # (monotonic clock, RSS) per sample

    def as_json(self, seconds: float) -> dict[str, Any]:
        cpu = max(0.0, self.cpu_end - self.cpu_start)
        step = max(1, math.ceil(len(self.series) / SERIES_POINTS))
        start = self.series[0][0] if self.series else 0.0
        return {
            "name": self.name,
            "pid": self.pid,
            "rss_start_mb": round(self.rss_start / MB, 1),
            "rss_peak_mb": round(self.rss_peak / MB, 1),
            "rss_end_mb": round(self.rss_end / MB, 1),
            "cpu_seconds": round(cpu, 1),
            "cpu_percent": round(100 * cpu / seconds, 1) if seconds else 0.0,
            "exited": self.gone,
            "rss_series_mb": [[round(t - start), round(rss / MB, 1)] for t, rss in self.series[::step]],
        }


def tree_usage(proc: psutil.Process, children: bool = True) -> tuple[int, float]:
    """(RSS bytes, CPU seconds) of a process and, unless told not to, its children."""
    rss, cpu = 0, 0.0
    for p in [proc, *(proc.children(recursive=True) if children else [])]:
        try:
            with p.oneshot():
                rss += p.memory_info().rss
                times = p.cpu_times()
                cpu += times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            if p is proc:
                raise
    return rss, cpu


class Monitor(threading.Thread):
    """Every second: RSS and CPU time of each process, the machine's CPU use; every two: the database
    counts (progress, the end of the drain); every five: a progress line."""

    def __init__(
        self, pids: dict[str, int], counter: Callable[[], Counts], progress: Callable[[str, Counts], str]
    ) -> None:
        super().__init__(name="load-monitor", daemon=True)
        self.stats = [ProcessStats(name, pid) for name, pid in pids.items()]
        self.procs = {s.name: psutil.Process(s.pid) for s in self.stats}
        self.counter = counter
        self.progress = progress
        self.counts = Counts()
        self.counted_at = 0.0
        self.phase = "warm-up"
        self.machine: dict[str, list[float]] = {}  # phase -> CPU busy % samples of the whole machine
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.lock = threading.Lock()

    def start_measuring(self) -> None:
        """The measured window starts now: RSS and CPU time at this point are the baseline."""
        with self.lock:
            for stats in self.stats:
                try:
                    rss, cpu = tree_usage(self.procs[stats.name], stats.pid != os.getpid())
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    stats.gone = True
                    continue
                stats.rss_start = stats.rss_peak = stats.rss_end = rss
                stats.cpu_start = stats.cpu_end = cpu
                stats.series = [(time.monotonic(), rss)]
            psutil.cpu_percent()  # the next call measures from here
            self.phase = "publishing"

    def sample(self) -> None:
        with self.lock:
            if self.phase in ("publishing", "draining"):
                self.machine.setdefault(self.phase, []).append(psutil.cpu_percent())
                for stats in self.stats:
                    if stats.gone:
                        continue
                    try:
                        rss, cpu = tree_usage(self.procs[stats.name], stats.pid != os.getpid())
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        stats.gone = True
                        continue
                    stats.rss_peak = max(stats.rss_peak, rss)
                    stats.rss_end, stats.cpu_end = rss, cpu
                    stats.series.append((time.monotonic(), rss))

    def count(self) -> Counts:
        counts = self.counter()
        self.counts, self.counted_at = counts, time.monotonic()
        return counts

    def run(self) -> None:
        last_count = last_say = time.monotonic()
        try:
            while not self.done.wait(SAMPLE_EVERY):
                self.sample()
                now = time.monotonic()
                if now - last_count >= COUNT_EVERY:
                    last_count = now
                    counts = self.count()
                    if now - last_say >= SAY_EVERY and self.phase in ("publishing", "draining"):
                        last_say = now
                        say(self.progress(self.phase, counts))
        except BaseException as exc:  # reported by the main thread; a dead monitor must not go unnoticed
            self.error = exc

    def stop(self) -> None:
        """Takes the end figures (before any worker stops); later calls change nothing."""
        if self.done.is_set():
            return
        self.done.set()
        if self.is_alive():
            self.join(timeout=10)
        self.sample()


# --- publishing at a rate ----------------------------------------------------------------------------


@dataclass
class Publishing:
    sent: list[float] = field(default_factory=list)  # wall clock per completion: handed to the producer
    batch_acks: list[float] = field(default_factory=list)  # seconds from send to the last ack, per batch
    started: float = 0.0  # wall clock
    ended: float = 0.0

    @property
    def count(self) -> int:
        return len(self.sent)

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def publish_at_rate(
    plan: Plan,
    publisher: MoodleEventPublisher,
    completions: Completions,
    monitor: Monitor,
    workers: list[Worker],
    result: Publishing,
) -> None:
    """A token bucket: `rate` tokens a second, at most BURST_SECONDS' worth saved up. Each round sends
    the whole tokens and waits for the broker's acks (the gateway's publisher). A producer that falls
    behind loses the tokens beyond the bucket, so the achieved rate shows it. Stops after `seconds`.
    Fills `result` as it goes (the progress lines read it)."""
    result.started = time.time()
    depth = max(1.0, plan.rate * BURST_SECONDS)
    start = last = time.monotonic()
    deadline, tokens, index = start + plan.seconds, 1.0, 0
    while index < plan.total:
        now = time.monotonic()
        if now >= deadline:
            break
        tokens = min(depth, tokens + (now - last) * plan.rate)
        last = now
        n = min(int(tokens), plan.total - index, MAX_BATCH)
        if n == 0:
            time.sleep(min((1.0 - tokens) / plan.rate, deadline - now))
            continue
        tokens -= n
        batch = [completions.message(*plan.pair(i)) for i in range(index, index + n)]
        sent = time.time()
        publisher.publish(batch)
        result.batch_acks.append(time.time() - sent)
        result.sent.extend([sent] * n)
        index += n
        if monitor.error is not None:
            raise BenchError(f"the monitor thread failed: {monitor.error!r}")
        if len(result.batch_acks) % 200 == 0:
            check_alive(workers, "while publishing")
    result.ended = time.time()


# --- startup and drain -------------------------------------------------------------------------------


def warm_up(
    settings: Settings,
    plan: Plan,
    completions: Completions,
    publisher: MoodleEventPublisher,
    sessions: sessionmaker[Session],
    workers: list[Worker],
    groups: dict[str, int],
    timeout: float,
) -> Counts:
    """WARMUP completions through the whole pipeline, then every worker in its group (no rebalance
    while measuring). Returns the counts afterwards: the baseline of the measured ones."""
    pairs = [plan.warmup_pair(i) for i in range(WARMUP)]
    publisher.publish([completions.message(*pair) for pair in pairs])
    wanted = Counts(WARMUP, WARMUP, sum(1 for _l, c in pairs if c in plan.pdf_courses))
    credentials_topic = settings.topic(CREDENTIALS)
    deadline = time.monotonic() + timeout
    last_say = 0.0
    while True:
        counts = count_rows(sessions, credentials_topic)
        states = {group: group_state(settings, group) for group in groups}
        joined = all(states[g] == ("Stable", n) for g, n in groups.items())
        if (
            counts.awards >= wanted.awards
            and counts.sent >= wanted.sent
            and counts.pdfs >= wanted.pdfs
            and joined
        ):
            return counts
        check_alive(workers, "during the warm-up")
        if time.monotonic() > deadline:
            raise BenchError(
                f"warm-up not done after {timeout:.0f} s: {counts}, groups {states}" + log_tail(workers[0])
            )
        if time.monotonic() - last_say > SAY_EVERY:
            last_say = time.monotonic()
            say(
                f"  warm-up: {counts.awards}/{wanted.awards} awards, {counts.pdfs}/{wanted.pdfs} PDFs; "
                + ", ".join(
                    f"{g.removeprefix(settings.topic_prefix)} {s} with {m}/{groups[g]}"
                    for g, (s, m) in states.items()
                )
            )
        time.sleep(0.5)


def drain(monitor: Monitor, wanted: Counts, baseline: Counts, workers: list[Worker], timeout: float) -> bool:
    """Waits until the database holds every award, announced credential and PDF; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        counts = monitor.count() - baseline
        if counts.awards >= wanted.awards and counts.sent >= wanted.sent and counts.pdfs >= wanted.pdfs:
            return True
        check_alive(workers, "while draining")
        if monitor.error is not None:
            raise BenchError(f"the monitor thread failed: {monitor.error!r}")
        if time.monotonic() > deadline:
            say(f"drain: not done after {timeout:.0f} s ({counts}); reporting what was done")
            return False
        time.sleep(1.0)


# --- collecting the end times ------------------------------------------------------------------------


@dataclass
class Outcome:
    """What happened to the measured completions, from the database and the topics."""

    award_at: dict[tuple[int, int], tuple[str, float]]  # (learner, course) -> (credential id, created_at)
    pdf_at: dict[str, float]  # credential id -> first rendered_at (PDF stored in S3)
    marked_at: dict[str, float]  # credential id -> outbox sent_at of its credential.issued event
    issued_at: dict[str, float]  # credential id -> timestamp of its first credential.issued message
    issued_events: int  # credential.issued messages of measured credentials (redeliveries included)
    rendered_events: set[str]  # credential ids with a message on certificates.rendered
    timestamp_types: set[int]  # 0 = CreateTime (the producer's clock at send), 1 = LogAppendTime
    dead_letters: int


def collect(settings: Settings, sessions: sessionmaker[Session], plan: Plan) -> Outcome:
    first, last = SYNTHETIC_FIRST_ID, SYNTHETIC_FIRST_ID + plan.learners  # warm-up learners excluded
    credentials_topic = settings.topic(CREDENTIALS)
    with sessions() as s:
        awards = {
            (learner, course): (cid, epoch(created))
            for cid, learner, course, created in s.execute(
                select(
                    AwardRow.credential_id, AwardRow.learner_id, AwardRow.course_id, AwardRow.created_at
                ).where(AwardRow.learner_id >= first, AwardRow.learner_id < last)
            )
        }
        pdfs = {
            cid: epoch(at)
            for cid, at in s.execute(
                select(CertificateRow.credential_id, func.min(CertificateRow.rendered_at)).group_by(
                    CertificateRow.credential_id
                )
            )
        }
        marked = {
            cid: epoch(at)
            for cid, at in s.execute(
                select(OutboxRow.credential_id, OutboxRow.sent_at).where(OutboxRow.topic == credentials_topic)
            )
            if at is not None
        }
    ours = {cid for cid, _at in awards.values()}
    say(f"reading {credentials_topic} and {settings.topic(RENDERED)} back for the message timestamps")
    issued: dict[str, float] = {}
    events, types = 0, set()
    for record in read_topics(settings, [credentials_topic]):
        message = json.loads(record.value)
        if message.get("type") != CredentialIssuedMessage.TYPE:
            continue
        cid = message["data"]["credential_id"]
        if cid in ours:
            events += 1
            types.add(record.timestamp_type)
            issued[cid] = min(issued.get(cid, math.inf), record.timestamp / 1000)
    rendered = {
        record.key.decode() for record in read_topics(settings, [settings.topic(RENDERED)]) if record.key
    }
    letters = len(
        read_topics(
            settings, [settings.topic(dlq(MOODLE_EVENTS)), settings.topic(dlq(RENDER_REQUESTS))], idle_ms=500
        )
    )
    return Outcome(
        awards,
        {c: t for c, t in pdfs.items() if c in ours},
        {c: t for c, t in marked.items() if c in ours},
        issued,
        events,
        rendered & ours,
        types,
        letters,
    )


# --- figures -----------------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest rank of sorted values."""
    if not values:
        return 0.0
    return values[max(0, min(len(values) - 1, math.ceil(pct / 100 * len(values)) - 1))]


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": round(percentile(ordered, 50), 3),
        "p90": round(percentile(ordered, 90), 3),
        "p99": round(percentile(ordered, 99), 3),
        "max": round(ordered[-1], 3) if ordered else 0.0,
    }


def rate_in(times: Sequence[float], start: float, end: float) -> float:
    """Events per second whose (sorted) times fall in (start, end]."""
    if end <= start:
        return 0.0
    return (bisect.bisect_right(times, end) - bisect.bisect_right(times, start)) / (end - start)


@dataclass
class Figures:
    report: dict[str, Any]
    text: str


def accounting(plan: Plan, pub: Publishing, outcome: Outcome, done: list[float | None]) -> dict[str, int]:
    pairs = [plan.pair(i) for i in range(pub.count)]
    cids = [outcome.award_at[p][0] if p in outcome.award_at else None for p in pairs]
    need = [plan.needs_pdf(i) for i in range(pub.count)]
    completed = sum(1 for d in done if d is not None)
    return {
        "published": pub.count,
        "awarded": sum(1 for c in cids if c is not None),
        "credential_events": sum(1 for c in cids if c in outcome.issued_at),
        "credential_events_total": outcome.issued_events,
        "marked_sent": sum(1 for c in cids if c in outcome.marked_at),
        "need_pdf": sum(need),
        "pdfs_stored": sum(1 for c, n in zip(cids, need, strict=True) if n and c in outcome.pdf_at),
        "rendered_events": sum(
            1 for c, n in zip(cids, need, strict=True) if n and c in outcome.rendered_events
        ),
        "completed": completed,
        "incomplete": pub.count - completed,
        "dead_letters": outcome.dead_letters,
    }


def done_times(plan: Plan, pub: Publishing, outcome: Outcome) -> list[float | None]:
    """Per published completion: when both its credential event and (if it needs one) its PDF were
    there, or None if one is missing."""
    result: list[float | None] = []
    for i in range(pub.count):
        award = outcome.award_at.get(plan.pair(i))
        issued = outcome.issued_at.get(award[0]) if award else None
        pdf = outcome.pdf_at.get(award[0]) if award and plan.needs_pdf(i) else 0.0
        result.append(None if issued is None or pdf is None else max(issued, pdf))
    return result


def backlog_series(pub: Publishing, done_sorted: list[float], until: float) -> list[tuple[float, int]]:
    """(seconds since the first publish, published but not done) at most SERIES_POINTS times."""
    span = max(until - pub.started, 1e-9)
    step = max(1.0, math.ceil(span / SERIES_POINTS))
    points, t = [], 0.0
    while t <= span + step:
        moment = pub.started + t
        points.append((t, bisect.bisect_right(pub.sent, moment) - bisect.bisect_right(done_sorted, moment)))
        t += step
    return points


def windows(pub: Publishing, done: list[float | None]) -> list[dict[str, Any]]:
    """Latency by publish time: is it steady, or growing with the backlog?"""
    count = max(1, min(WINDOWS, int(pub.seconds)))
    width = pub.seconds / count if pub.seconds > 0 else 1.0
    rows = []
    for w in range(count):
        lo, hi = pub.started + w * width, pub.started + (w + 1) * width
        last = pub.count if w == count - 1 else bisect.bisect_left(pub.sent, hi)
        picked = range(bisect.bisect_left(pub.sent, lo), last)
        latencies = sorted(d - pub.sent[i] for i in picked if (d := done[i]) is not None)
        rows.append(
            {
                "from_second": round(w * width, 1),
                "to_second": round((w + 1) * width, 1),
                "published": len(picked),
                "completed": len(latencies),
                "p50": round(percentile(latencies, 50), 3),
                "p99": round(percentile(latencies, 99), 3),
            }
        )
    return rows


def figures(
    args: argparse.Namespace,
    plan: Plan,
    pub: Publishing,
    outcome: Outcome,
    drained: bool,
    drain_end: float,
    monitor: Monitor,
    run_seconds: float,
) -> Figures:
    done = done_times(plan, pub, outcome)
    counts = accounting(plan, pub, outcome, done)
    latency = [d - pub.sent[i] for i, d in enumerate(done) if d is not None]
    issued_lat, pdf_lat, award_lat, mark_lag = [], [], [], []
    for i in range(pub.count):
        award = outcome.award_at.get(plan.pair(i))
        if award is None:
            continue
        cid, created = award
        award_lat.append(created - pub.sent[i])
        if cid in outcome.issued_at:
            issued_lat.append(outcome.issued_at[cid] - pub.sent[i])
            if cid in outcome.marked_at:
                mark_lag.append(outcome.marked_at[cid] - outcome.issued_at[cid])
        if plan.needs_pdf(i) and cid in outcome.pdf_at:
            pdf_lat.append(outcome.pdf_at[cid] - pub.sent[i])

    done_sorted = sorted(d for d in done if d is not None)
    end_pub, half = pub.ended, pub.started + pub.seconds / 2
    backlog_at = lambda t: bisect.bisect_right(pub.sent, t) - bisect.bisect_right(done_sorted, t)  # noqa: E731
    backlog_end = backlog_at(end_pub)
    series = backlog_series(pub, done_sorted, drain_end)
    growth = (backlog_end - backlog_at(half)) / (end_pub - half) if end_pub > half else 0.0
    last_done = done_sorted[-1] if done_sorted else end_pub
    drain_seconds = max(0.0, last_done - end_pub) if drained else None
    achieved = pub.count / pub.seconds if pub.seconds > 0 else 0.0
    done_rate_pub = rate_in(done_sorted, half, end_pub)
    # A drain of a few seconds is the last completions in flight, not a rate worth quoting.
    drain_rate = backlog_end / drain_seconds if drain_seconds and drain_seconds >= MIN_DRAIN else None
    # Sustained: the backlog did not keep growing while publishing, and everything got done.
    sustained = drained and counts["incomplete"] == 0 and growth <= max(SUSTAINED_GROWTH * args.rate, 1.0)
    sustainable = round(achieved if sustained else done_rate_pub, 1)
    awards_sorted = sorted(t for _c, t in outcome.award_at.values())
    issued_sorted = sorted(outcome.issued_at.values())
    pdf_sorted = sorted(outcome.pdf_at.values())
    pub_rates = {
        "awards_per_second": round(rate_in(awards_sorted, half, end_pub), 1),
        "credential_events_per_second": round(rate_in(issued_sorted, half, end_pub), 1),
        "pdfs_per_second": round(rate_in(pdf_sorted, half, end_pub), 1),
        "completions_per_second": round(done_rate_pub, 1),
    }
    stages: dict[str, dict[str, float | None]] = {
        "second_half_of_publishing": {**pub_rates},
        "drain": {
            "awards_per_second": round(rate_in(awards_sorted, end_pub, last_done), 1) if drain_rate else None,
            "pdfs_per_second": round(rate_in(pdf_sorted, end_pub, last_done), 1) if drain_rate else None,
            "completions_per_second": round(drain_rate, 1) if drain_rate else None,
        },
    }
    bottleneck = bottleneck_of(pub_rates, achieved, plan, sustained)
    measured = max(drain_end - pub.started, 1e-9)
    processes = [s.as_json(measured) for s in monitor.stats]
    machine = {phase: round(sum(v) / len(v), 1) for phase, v in monitor.machine.items() if v}
    every = [x for v in monitor.machine.values() for x in v]
    machine["whole_run"] = round(sum(every) / len(every), 1) if every else 0.0
    # What this run's processes used of all cores: the rest of `whole_run` was other work on the machine.
    machine["this_run"] = round(
        sum(p["cpu_seconds"] for p in processes) / (measured * (os.cpu_count() or 1)) * 100, 1
    )
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
            "load_average_before": round(LOAD_BEFORE, 2),
        },
        "config": {
            "rate": args.rate,
            "seconds": args.seconds,
            "issuers": args.issuers,
            "renderers": args.renderers,
            "certificates": args.certificates,
            "broker_storage": args.broker_storage,
            "completions_planned": plan.total,
            "courses": list(plan.courses),
            "need_pdf": counts["need_pdf"],
            "warmup": WARMUP,
        },
        "run_seconds": round(run_seconds, 1),
        "publish": {
            "published": pub.count,
            "seconds": round(pub.seconds, 2),
            "achieved_rate": round(achieved, 2),
            "target_rate": args.rate,
            "batches": len(pub.batch_acks),
            "ack_ms": spread([1000 * a for a in pub.batch_acks]),
        },
        "accounting": counts,
        "latency_seconds": {
            "end_to_end": spread(latency),
            "credential_event": spread(issued_lat),
            "pdf_stored": spread(pdf_lat),
            "award_stored": spread(award_lat),
        },
        "end_times": {
            "credential_event": "timestamp of the credential.issued message on `credentials` "
            + (
                "(LogAppendTime)"
                if outcome.timestamp_types == {1}
                else "(CreateTime: the issuer's producer at send)"
            ),
            "pdf_stored": "certificates.rendered_at (set when S3 acknowledged the PUT)",
            "outbox_marked_after_message_ms": spread([1000 * x for x in mark_lag]),
        },
        "throughput": {
            "achieved_publish_rate": round(achieved, 2),
            "completions_per_second_publishing": round(done_rate_pub, 2),
            "completions_per_second_drain": round(drain_rate, 2) if drain_rate else None,
            "completions_per_second_overall": round(len(done_sorted) / max(last_done - pub.started, 1e-9), 2),
        },
        "backlog": {
            "at_end_of_publishing": backlog_end,
            "peak": max((backlog_at(t) for t in pub.sent), default=0),
            "growth_per_second_second_half": round(growth, 2),
            "drained": drained,
            "drain_seconds": round(drain_seconds, 1) if drain_seconds is not None else None,
            "series": [[round(t, 1), b] for t, b in series],
        },
        "sustained": sustained,
        "sustainable_rate": sustainable,
        "bottleneck": bottleneck,
        "stages": stages,
        "windows": windows(pub, done),
        "processes": processes,
        "machine_cpu_busy_percent": machine,
    }
    return Figures(report, text_report(report))


def bottleneck_of(rates: dict[str, float], offered: float, plan: Plan, sustained: bool) -> str:
    if sustained:
        return "none: every stage kept up"
    if rates["awards_per_second"] < 0.95 * offered:
        return "issuer: awards fell behind the published completions"
    if plan.pdf_courses and rates["pdfs_per_second"] < 0.95 * offered:
        return "renderers: PDFs fell behind the awards"
    return "unclear: no single stage fell behind in the second half of publishing"


# --- report ------------------------------------------------------------------------------------------


def text_report(r: dict[str, Any]) -> str:
    cfg, pub, acc, bl, thr = r["config"], r["publish"], r["accounting"], r["backlog"], r["throughput"]
    machine = r["machine"]
    lines = [
        f"e-Backpack load benchmark: {machine['cpus']} CPUs, Python {machine['python']}, "
        f"SQLite {machine['sqlite']}, Tansu (log in {cfg.get('broker_storage', 's3')}) + SeaweedFS",
        f"run took {r['run_seconds']:.0f} s; load average before it "
        f"{machine['load_average_before']:.2f} (other load skews all)",
        f"offered {cfg['rate']:g}/s for {cfg['seconds']:g} s: {cfg['completions_planned']} completions "
        f"of distinct learners in courses {', '.join(map(str, cfg['courses']))}, one credential each; "
        f"{cfg['need_pdf']} of the published need a PDF",
        f"workers: {cfg['issuers']} issuer(s), {cfg['renderers']} renderer(s); "
        f"{cfg['warmup']} warm-up completions before the clock",
        "",
    ]
    verdict = (
        f"SUSTAINED {cfg['rate']:g}/s (backlog when publishing ended: "
        f"{bl['at_end_of_publishing'] / cfg['rate']:.1f} s of input)"
        if r["sustained"]
        else f"NOT SUSTAINED at {cfg['rate']:g}/s: the backlog grew by "
        f"{bl['growth_per_second_second_half']:.1f}/s; the pipeline completed "
        f"~{r['sustainable_rate']:g}/s (the sustainable rate here)"
    )
    drain = (
        f"{bl['drain_seconds']:.1f} s after publishing ended"
        if bl["drained"]
        else "NOT drained within --drain-timeout"
    )
    lines += [
        f"verdict        {verdict}",
        f"bottleneck     {r['bottleneck']}",
        f"published      {pub['published']} in {pub['seconds']:.1f} s = {pub['achieved_rate']:.1f}/s "
        f"(target {pub['target_rate']:g}/s); {pub['batches']} sends, ack p50 {pub['ack_ms']['p50']:.0f} ms, "
        f"p99 {pub['ack_ms']['p99']:.0f} ms",
        f"completed      {acc['completed']}/{acc['published']} (credential event, and PDF where needed); "
        f"awarded {acc['awarded']}, credential events {acc['credential_events']}, PDFs {acc['pdfs_stored']}/"
        f"{acc['need_pdf']}, dead letters {acc['dead_letters']}",
        f"throughput     completions {thr['completions_per_second_publishing']:.1f}/s in the 2nd half of "
        f"publishing, "
        + (
            f"{thr['completions_per_second_drain']:.1f}/s while draining, "
            if thr["completions_per_second_drain"]
            else ""
        )
        + f"{thr['completions_per_second_overall']:.1f}/s overall",
        f"backlog        {bl['at_end_of_publishing']} when publishing ended (peak {bl['peak']}); "
        f"grew {bl['growth_per_second_second_half']:+.1f}/s in the 2nd half of publishing",
        f"drain          {drain}",
        "",
        f"{'latency (s)':<20}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}{'count':>8}",
    ]
    names = {
        "end_to_end": "end to end",
        "credential_event": "credential event",
        "pdf_stored": "PDF stored",
        "award_stored": "award stored",
    }
    for key, name in names.items():
        s = r["latency_seconds"][key]
        lines.append(
            f"{name:<20}{s['p50']:>9.2f}{s['p90']:>9.2f}{s['p99']:>9.2f}{s['max']:>9.2f}{s['count']:>8}"
        )
    lag = r["end_times"]["outbox_marked_after_message_ms"]
    lines += [
        f"  from publish to: the credential.issued message's timestamp, rendered_at, awards.created_at;"
        f" outbox sent_at came {lag['p50']:.0f} ms (p99 {lag['p99']:.0f} ms) after the message",
        "",
        f"{'by publish time':<20}{'published':>10}{'completed':>10}{'p50 s':>8}{'p99 s':>8}",
    ]
    for w in r["windows"]:
        span = f"{w['from_second']:g}-{w['to_second']:g} s"
        lines.append(f"  {span:<18}{w['published']:>10}{w['completed']:>10}{w['p50']:>8.2f}{w['p99']:>8.2f}")
    pub_rates, drain_rates = r["stages"]["second_half_of_publishing"], r["stages"]["drain"]
    lines += [
        "",
        "stages, per second (2nd half of publishing): "
        f"awards {pub_rates['awards_per_second']:.1f}, "
        f"credential events {pub_rates['credential_events_per_second']:.1f}, "
        f"PDFs {pub_rates['pdfs_per_second']:.1f}"
        + (
            f"; while draining: PDFs {drain_rates['pdfs_per_second']:.1f}"
            if drain_rates["pdfs_per_second"] is not None
            else ""
        ),
        "",
        f"{'process':<14}{'RSS start':>10}{'peak':>8}{'end MB':>8}{'CPU s':>9}{'% of a core':>13}",
    ]
    for p in r["processes"]:
        lines.append(
            f"{p['name']:<14}{p['rss_start_mb']:>10.1f}{p['rss_peak_mb']:>8.1f}"
            f"{p['rss_end_mb']:>8.1f}{p['cpu_seconds']:>9.1f}{p['cpu_percent']:>13.1f}"
            + ("  (exited)" if p["exited"] else "")
        )
    busy = r["machine_cpu_busy_percent"]
    lines.append(
        f"machine CPU busy (all cores = 100 %): publishing {busy.get('publishing', 0):.0f} %, "
        f"draining {busy.get('draining', 0):.0f} %; over the run {busy['whole_run']:.0f} %, "
        f"of which this run's processes {busy['this_run']:.0f} %"
    )
    return "\n".join(lines)


def pipeline_workers(settings: Settings, issuers: int, renderers: int) -> tuple[list[Worker], dict[str, int]]:
    """The issuer and renderer workers to start, and their consumer groups with how many members each."""
    workers = [Worker(f"issuer-{i}", settings) for i in range(1, issuers + 1)]
    workers += [Worker(f"renderer-{i}", settings) for i in range(1, renderers + 1)]
    groups = {settings.topic(settings.issuer_group): issuers}
    if renderers:
        groups[settings.topic(RENDERER_GROUP)] = renderers
    return workers, groups


# --- main --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="completions per second to publish")
    parser.add_argument("--seconds", type=float, default=300.0, help="how long to publish")
    add_worker_options(
        parser,
        "completions of courses whose rule issues a PDF (default), or, with "
        "--no-certificates, every rule course with PDFs switched off",
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds start-up and warm-up may take")
    parser.add_argument(
        "--drain-timeout", type=float, default=1800.0, help="seconds to wait for the backlog after publishing"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout (report to stderr)")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs, DB) afterwards")
    add_broker_storage_option(parser)
    args = parser.parse_args(argv)
    if not 0 < args.rate <= 5000 or not 0 < args.seconds <= 3600 or args.rate * args.seconds > 1_000_000:
        parser.error("need 0 < --rate <= 5000, 0 < --seconds <= 3600 and at most 1,000,000 completions")
    if not 1 <= args.issuers <= 8 or not 0 <= args.renderers <= 8:
        parser.error("need 1 <= --issuers <= 8 and 0 <= --renderers <= 8")
    if args.certificates and args.renderers < 1:
        parser.error("--certificates needs --renderers >= 1")
    if args.timeout <= 0 or args.drain_timeout <= 0:
        parser.error("timeouts must be positive")
    return args


def progress_line(plan: Plan, pub: Publishing, baseline: Counts) -> Callable[[str, Counts], str]:
    def line(phase: str, counts: Counts) -> str:
        c = counts - baseline
        done = min(c.sent, c.pdfs) if plan.pdf_courses else c.sent
        return (
            f"  {phase}: published {pub.count}/{plan.total}, awards {c.awards}, "
            f"credential events {c.sent}, PDFs {c.pdfs}; backlog ~{pub.count - done}"
        )

    return line


def benchmark(args: argparse.Namespace) -> Figures:
    with ExitStack() as cleanup:
        tmp = Path(tempfile.mkdtemp(prefix="ebackpack-load-"))
        if args.keep:
            say(f"data dir (kept): {tmp}")
        else:
            cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        rules_file, courses, pdf_courses = rules_and_courses(tmp, args.certificates)
        plan = Plan(args.rate, args.seconds, courses, pdf_courses)
        completions = Completions()
        completions.check(*plan.pair(0))
        stack = stack_settings(tmp)
        storage = broker_storage(args)
        say(
            f"starting Tansu on {stack.kafka_bootstrap} (log in {storage}) and SeaweedFS S3 on "
            f"{stack.s3_endpoint}"
        )
        embedded = cleanup.enter_context(
            EmbeddedStack(stack, broker_storage=storage)
        )  # stopped before the data dir
        settings = run_settings(stack, tmp, rules_file)
        sessions = prepare(settings)
        say(f"storing {plan.learners + WARMUP} learner profiles")
        store_learners(sessions, plan)
        workers, groups = pipeline_workers(settings, args.issuers, args.renderers)
        say(
            f"starting {args.issuers} issuer(s) and {args.renderers} renderer(s); warming up with "
            f"{WARMUP} completions"
        )
        cleanup.enter_context(running(workers))
        publisher = cleanup.enter_context(closing(MoodleEventPublisher(settings)))
        baseline = warm_up(settings, plan, completions, publisher, sessions, workers, groups, args.timeout)
        pids = {w.name: w.process.pid for w in workers if w.process is not None}
        pids |= {name: proc.pid for name, proc in embedded.processes.items()}
        pids["benchmark"] = os.getpid()
        pub = Publishing()
        credentials_topic = settings.topic(CREDENTIALS)
        monitor = Monitor(
            pids, lambda: count_rows(sessions, credentials_topic), progress_line(plan, pub, baseline)
        )
        monitor.start()
        cleanup.callback(monitor.stop)
        monitor.start_measuring()
        say(f"publishing {plan.total} completions at {args.rate:g}/s for {args.seconds:g} s")
        publish_at_rate(plan, publisher, completions, monitor, workers, pub)
        monitor.phase = "draining"
        say(
            f"published {pub.count} in {pub.seconds:.1f} s ({pub.count / max(pub.seconds, 1e-9):.1f}/s); "
            "waiting for every award, credential event and PDF"
        )
        need_pdf = sum(1 for i in range(pub.count) if plan.needs_pdf(i))
        wanted = Counts(pub.count, pub.count, need_pdf)
        drained = drain(monitor, wanted, baseline, workers, args.drain_timeout)
        drain_end = time.time()
        monitor.stop()
        outcome = collect(settings, sessions, plan)
        run_seconds = time.monotonic() - CLOCK
        say("stopping workers and the stack")
    return figures(args, plan, pub, outcome, drained, drain_end, monitor, run_seconds)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def work() -> Report:
        result = benchmark(args)
        return result.text, json.dumps(result.report, ensure_ascii=False)

    return run_benchmark("load benchmark", work, args.json, (StackError,))


if __name__ == "__main__":
    sys.exit(main())
