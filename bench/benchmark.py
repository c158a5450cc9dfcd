"""Throughput of the e-Backpack pipeline, stage by stage, on one embedded stack in one run.

    .venv/bin/python bench/benchmark.py [--events N] [--pdfs M] [--json] [--keep]

1. broker passthrough: an aiokafka consume -> produce loop over N Moodle event messages (the ceiling
   any Kafka service in Python can reach on this broker and machine);
2. issuer without rendering: N Moodle events in, awards into SQL + outbox + `credentials` out, with
   every credential format signed, and again with signing off;
3. renderer: M render requests waiting on `certificates.render`, one worker and then two;
4. signing alone, in this process: OB 3.0 credentials per second for each proof format, and Data
   Integrity with plain pyld canonicalization (what the shape cache saves).

Progress goes to stderr, the table at the end too when `--json` puts one JSON object on stdout.
See bench/README.md for how to read the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener
from common import (
    CLOCK,
    LOAD_BEFORE,
    BenchError,
    Report,
    add_broker_storage_option,
    broker_storage,
    log_tail,
    run_benchmark,
    say,
)
from kafka.admin import KafkaAdminClient, NewTopic
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.keystore import ensure_key_dir
from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow
from ebackpack.bootstrap import prepare
from ebackpack.config import SAMPLE_DIR, Settings
from ebackpack.dev.demo import DemoTimeout, PipelineProbe, SilentProgress, wait_until_done
from ebackpack.dev.sample_data import Dataset, Message, generate
from ebackpack.dev.stack import EmbeddedStack, StackError, free_port
from ebackpack.dev.workers import Worker
from ebackpack.domain.credentials import dataintegrity, ob3
from ebackpack.domain.credentials.facts import CredentialFacts, recipient_hash
from ebackpack.domain.credentials.signer import DATA_INTEGRITY, FORMATS, JWT, CredentialSigner
from ebackpack.domain.credentials.urls import PublicUrls
from ebackpack.domain.rules import RuleBook, load_rules
from ebackpack.secret_policy import throwaway_secrets
from ebackpack.streaming.errors import InvalidMessage
from ebackpack.streaming.topics import MOODLE_EVENTS, TOPICS
from schemas.moodle import Profiles
from services.gateway.profiles import store_profiles
from services.gateway.publisher import MoodleEventPublisher
from services.issuer.domain import NotALearnerCompletion, learner_completion
from services.issuer.service import parse_moodle_message

SAMPLE_RULES = SAMPLE_DIR / "rules.toml"
# Same partition count as the real input topic, so the passthrough has the issuer's parallelism.
PARTITIONS = next(t.partitions for t in TOPICS if t.name == MOODLE_EVENTS)
DATA_SEED, WARMUP_SEED, RENDER_SEED = 1, 2, 3
BATCH = 500  # records per consume -> produce round of the passthrough
POLL = 0.2  # seconds between probes of the database while a renderer works


# --- progress on stderr ------------------------------------------------------------------------------


class Ticker:
    """Says a progress line at most every `every` seconds: waits poll far more often than that."""

    def __init__(self, every: float = 3.0) -> None:
        self.every = every
        self.last = 0.0

    def __call__(self, text: str) -> None:
        if time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            say(text)


class IssuerProgress(SilentProgress):
    """What `wait_until_done` reports, as throttled stderr lines."""

    def __init__(self) -> None:
        self.tick = Ticker()

    def processed(self, events_done: int, events_total: int, pdfs_done: int, pdfs_total: int) -> None:
        self.tick(f"  issuer committed {events_done}/{events_total} events")


# --- results -----------------------------------------------------------------------------------------


@dataclass
class Result:
    phase: str
    items: int
    unit: str
    seconds: float
    note: str = ""
    details: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("note")
        return {**data, "seconds": round(self.seconds, 3), "per_second": round(self.rate, 2)}


# --- shared helpers ----------------------------------------------------------------------------------


def phase_settings(stack: Settings, tmp: Path, name: str, rules_file: Path) -> Settings:
    """Own topics, bucket, database and worker logs on the shared stack. Built anew, not model_copy'd,
    so no cached `db_url` can leak from one phase into the next."""
    return Settings(
        **{
            **stack.model_dump(),
            "data_dir": tmp / name,
            "topic_prefix": f"bench.{name}.",
            "s3_bucket": f"bench-{name}",
            "rules_file": rules_file,
            "database_url": f"sqlite:///{tmp / name / 'ebackpack.db'}",
        }
    )


@contextmanager
def running(*workers: Worker) -> Iterator[list[Worker]]:
    try:
        for worker in workers:
            worker.start()
        yield list(workers)
    finally:
        for worker in workers:
            worker.stop()


def wait_for(done: Callable[[], bool], workers: list[Worker], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        dead = [w for w in workers if not w.running]
        if dead:
            raise BenchError(f"{dead[0].name} stopped while waiting for {what}" + log_tail(dead[0]))
        if time.monotonic() > deadline:
            raise BenchError(f"no {what} after {timeout:.0f} s" + log_tail(workers[0]))
        time.sleep(POLL)


def since(start_wall: float, moment: datetime) -> float:
    """Seconds from `start_wall` to a timestamp a worker wrote (SQLite gives them back naive, in UTC)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return aware.timestamp() - start_wall


# --- 1. broker passthrough ---------------------------------------------------------------------------


def create_topics(settings: Settings, names: list[str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap.split(","), client_id="bench")
    try:
        admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in names])
    finally:
        admin.close()


async def produce_all(settings: Settings, topic: str, messages: list[Message]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class Assigned(ConsumerRebalanceListener):
    """Notes when the group handed out the partitions: the clock of the passthrough starts there."""

    def __init__(self) -> None:
        self.at = 0.0

    async def on_partitions_revoked(self, revoked: object) -> None:
        pass

    async def on_partitions_assigned(self, assigned: object) -> None:
        self.at = self.at or time.monotonic()


def group_consumer(settings: Settings, topic: str, listener: Assigned) -> AIOKafkaConsumer:
    """Joins a group and commits by hand, as a service would; the broker timings are the workers'."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id="bench.passthrough",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(settings.broker_session_timeout * 1000),
        heartbeat_interval_ms=int(settings.broker_heartbeat_interval * 1000),
        rebalance_timeout_ms=int(settings.broker_rebalance_timeout * 1000),
    )
    consumer.subscribe([topic], listener=listener)
    return consumer


async def relay(
    consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, sink: str, total: int, deadline: float
) -> None:
    """Consume a batch -> produce each record -> await every ack -> commit, until `total` went through."""
    done, tick = 0, Ticker()
    while done < total:
        if time.monotonic() > deadline:
            raise BenchError(f"passthrough moved only {done}/{total} messages in time")
        batches = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
        records = [record for batch in batches.values() for record in batch]
        if records:
            await asyncio.gather(*[await producer.send(sink, r.value, key=r.key) for r in records])
            await consumer.commit()
            done += len(records)
        tick(f"  passed through {done}/{total} messages")


async def pass_through(
    settings: Settings, source: str, sink: str, total: int, timeout: float
) -> tuple[float, float]:
    """Returns (connect + group join, assignment to last commit) in seconds."""
    listener = Assigned()
    consumer = group_consumer(settings, source, listener)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    started = time.monotonic()
    await producer.start()
    await consumer.start()
    try:
        await relay(consumer, producer, sink, total, started + timeout)
        return listener.at - started, time.monotonic() - listener.at
    finally:
        await consumer.stop()
        await producer.stop()


def bench_passthrough(stack: Settings, messages: list[Message], timeout: float) -> Result:
    source, sink = "bench.passthrough.in", "bench.passthrough.out"
    create_topics(stack, [source, sink])
    say(f"passthrough: producing {len(messages)} Moodle event messages to {source}")
    produce_start = time.monotonic()
    asyncio.run(produce_all(stack, source, messages))
    produced = time.monotonic() - produce_start
    say("passthrough: consume -> produce with one aiokafka consumer in a group")
    join, steady = asyncio.run(pass_through(stack, source, sink, len(messages), timeout))
    return Result(
        "broker passthrough",
        len(messages),
        "msgs",
        steady,
        f"connect + group join {join:.1f} s not counted; input produced in {produced:.1f} s "
        f"({len(messages) / produced:.0f} msgs/s)",
        {"join_seconds": round(join, 3), "produce_seconds": round(produced, 3)},
    )


# --- 2. issuer, rendering off ------------------------------------------------------------------------


def no_certificate_rules(tmp: Path) -> Path:
    path = tmp / "rules-no-certificates.toml"
    path.write_text(
        SAMPLE_RULES.read_text(encoding="utf-8").replace("certificate = true", "certificate = false")
    )
    if any(rule.certificate for rule in load_rules(path).rules):
        raise BenchError(f"{path} still asks for certificates: has rules.toml changed its layout?")
    return path


def last_award_at(sessions: sessionmaker[Session]) -> datetime:
    with sessions() as s:
        moment = s.scalar(select(func.max(AwardRow.created_at)))
    if moment is None:
        raise BenchError("no award in the database")
    return moment


def warm_up_issuer(
    probe: PipelineProbe,
    publisher: MoodleEventPublisher,
    workers: list[Worker],
    warm: Dataset,
    timeout: float,
) -> None:
    """One completion through the issuer: afterwards its worker has started and joined its group."""
    say("issuer: started; waiting for the warm-up award (worker start + group join)")
    publisher.publish(warm.messages)
    wait_for(lambda: probe.counts()[0] >= len(warm.expected_awards), workers, timeout, "warm-up award")


def cpu_seconds(worker: Worker) -> float:
    """CPU time (user + system) the worker's process has used: a cost per award that other load on the
    machine changes far less than the wall-clock rate."""
    assert worker.process is not None
    times = psutil.Process(worker.process.pid).cpu_times()
    return float(times.user + times.system)


def bench_issuer(stack: Settings, tmp: Path, dataset: Dataset, timeout: float, signing: bool) -> Result:
    name = "issuer" if signing else "issuer-unsigned"
    settings = phase_settings(stack, tmp, name, no_certificate_rules(tmp)).model_copy(
        update={"credential_formats": ",".join(FORMATS) if signing else ""}
    )
    sessions = prepare(settings)
    store_profiles(sessions, dataset.profiles)
    probe = PipelineProbe(settings, sessions, load_rules(settings.rules_file))
    warm = generate(1, seed=WARMUP_SEED)  # one completion; may share a credential with the data set
    with running(Worker("issuer", settings)) as workers, closing(MoodleEventPublisher(settings)) as publisher:
        warm_up_issuer(probe, publisher, workers, warm, timeout)
        before = probe.counts()[0]
        say(f"issuer: publishing {len(dataset.messages)} events and waiting for awards + commits")
        cpu_before = cpu_seconds(workers[0])
        start_wall, start = time.time(), time.monotonic()
        ends = publisher.publish(dataset.messages)
        published = time.monotonic() - start
        wait_until_done(probe, ends, workers, IssuerProgress(), timeout)
        seconds = time.monotonic() - start
        cpu = cpu_seconds(workers[0]) - cpu_before
    awards = probe.counts()[0] - before
    expected = len(dataset.expected_awards - warm.expected_awards)
    if awards != expected:
        say(f"WARNING: issuer stored {awards} new awards, the data set earns {expected}")
    last = since(start_wall, last_award_at(sessions))
    phase = "issuer, all formats" if signing else "issuer, signing off"
    return Result(
        phase,
        len(dataset.messages),
        "events",
        seconds,
        f"{awards} awards = {awards / seconds:.1f} awards/s; published in {published:.1f} s; "
        f"last award stored after {last:.1f} s; issuer CPU {1000 * cpu / max(awards, 1):.2f} ms an award",
        {
            "awards": awards,
            "issuer_cpu_seconds": round(cpu, 3),
            "issuer_cpu_ms_per_award": round(1000 * cpu / max(awards, 1), 3),
            "awards_per_second": round(awards / seconds, 2),
            "publish_seconds": round(published, 3),
            "last_award_seconds": round(last, 3),
        },
    )


# --- 3. renderer -------------------------------------------------------------------------------------


def first_certificate_completions(messages: list[Message], rules: RuleBook, limit: int) -> list[Message]:
    """Distinct learner completions of courses whose rule issues a PDF, in publishing order."""
    seen: set[tuple[int, int]] = set()
    picked: list[Message] = []
    for key, value in messages:
        try:
            pair = learner_completion(parse_moodle_message(value).data)
        except (InvalidMessage, NotALearnerCompletion):
            continue
        rule = rules.for_course(pair[1])
        if rule is not None and rule.certificate and pair not in seen and len(picked) < limit:
            seen.add(pair)
            picked.append((key, value))
    return picked


def certificate_data(pdfs: int, rules: RuleBook) -> tuple[Profiles, list[Message]]:
    """Exactly `pdfs` completions that each earn one certificate: the renderer's work is then exact."""
    events = max(20, pdfs * 4)  # about 30 % of a generated set earn a certificate
    while True:
        data = generate(events, seed=RENDER_SEED)
        picked = first_certificate_completions(data.messages, rules, pdfs)
        if len(picked) == pdfs:
            return data.profiles, picked
        events *= 2


def fill_render_topic(
    settings: Settings, probe: PipelineProbe, messages: list[Message], timeout: float
) -> None:
    """The issuer turns the completions into render requests, then stops, leaving the CPUs to renderers."""
    tick = Ticker()

    def issued() -> bool:
        _awards, wanted, _stored, pending = probe.counts()
        tick(f"  issuer: {wanted}/{len(messages)} certificate awards, {pending} unannounced")
        return wanted >= len(messages) and pending == 0

    with running(Worker("issuer", settings)) as workers, closing(MoodleEventPublisher(settings)) as publisher:
        publisher.publish(messages)
        wait_for(issued, workers, timeout, f"{len(messages)} render requests")


def pdf_times(sessions: sessionmaker[Session]) -> tuple[datetime, datetime]:
    with sessions() as s:
        first, last = s.execute(
            select(func.min(CertificateRow.rendered_at), func.max(CertificateRow.rendered_at))
        ).one()
    return first, last


def time_renderers(
    settings: Settings, probe: PipelineProbe, pdfs: int, workers: int, timeout: float
) -> tuple[float, float]:
    """Start the renderers cold; returns (wall clock start, seconds until every PDF is stored)."""
    tick = Ticker()

    def stored() -> bool:
        done = probe.counts()[2]
        tick(f"  {done}/{pdfs} PDFs stored")
        return done >= pdfs

    renderers = [Worker(f"renderer-{i}", settings) for i in range(1, workers + 1)]
    start_wall, start = time.time(), time.monotonic()
    with running(*renderers):
        wait_for(stored, renderers, timeout, f"{pdfs} stored PDFs")
        seconds = time.monotonic() - start
    return start_wall, seconds


def bench_renderer(
    stack: Settings, tmp: Path, workers: int, data: tuple[Profiles, list[Message]], timeout: float
) -> Result:
    profiles, messages = data
    settings = phase_settings(stack, tmp, f"render-{workers}", SAMPLE_RULES)
    sessions = prepare(settings)
    store_profiles(sessions, profiles)
    probe = PipelineProbe(settings, sessions, load_rules(settings.rules_file))
    say(f"renderer x{workers}: issuer fills certificates.render with {len(messages)} requests")
    fill_render_topic(settings, probe, messages, timeout)
    say(f"renderer x{workers}: starting {workers} renderer worker(s), timing until every PDF is stored")
    start_wall, seconds = time_renderers(settings, probe, len(messages), workers, timeout)
    first, last = (since(start_wall, t) for t in pdf_times(sessions))
    steady = (len(messages) - 1) / (last - first) if last > first else 0.0
    return Result(
        f"renderer, {workers} worker{'s' if workers > 1 else ''}",
        len(messages),
        "PDFs",
        seconds,
        f"first PDF after {first:.1f} s (start + join + 1st render); then "
        f"{steady:.2f} PDFs/s up to the last at {last:.1f} s",
        {
            "workers": workers,
            "first_pdf_seconds": round(first, 3),
            "last_pdf_seconds": round(last, 3),
            "steady_per_second": round(steady, 2),
        },
    )


# --- 4. signing alone --------------------------------------------------------------------------------


def signing_facts(count: int, rules: RuleBook, urls: PublicUrls) -> list[CredentialFacts]:
    rule = rules.rules[0]
    issued = datetime(2026, 1, 12, tzinfo=UTC)
    return [
        CredentialFacts(
            credential_id=str(uuid.UUID(int=n)),
            verification_code=f"BENCH-{n:08d}",
            rule=rule,
            issuer=rules.issuer,
            learner_subject_id=f"urn:uuid:{uuid.UUID(int=n + 1)}",
            learner_name=f"Zofia Źdźbło-{n}",
            recipient_salt=f"{n:016x}",
            recipient_hash=recipient_hash(f"learner{n}@example.org", f"{n:016x}"),
            issued_on=issued,
            valid_until=None,
            status_list=1,
            status_index=n,
            urls=urls,
        )
        for n in range(count)
    ]


def time_signing(
    name: str, facts: list[CredentialFacts], sign: Callable[[CredentialFacts], object], note: str
) -> Result:
    sign(facts[0])  # contexts loaded, shape expanded: steady state only
    start = time.monotonic()
    for item in facts:
        sign(item)
    return Result(name, len(facts), "creds", time.monotonic() - start, note)


def bench_signing(tmp: Path, count: int) -> list[Result]:
    ring = ensure_key_dir(tmp / "bench-keys")
    urls = PublicUrls("https://backpack.example.org")
    facts = signing_facts(count, load_rules(SAMPLE_RULES), urls)
    key = ring.current("Ed25519")
    method = urls.verification_method(key.kid)

    def plain(item: CredentialFacts) -> object:
        return dataintegrity.sign(ob3.credential(item), key, method, "2026-01-12T00:00:00Z")

    say(f"signing: {count} credentials per proof format, in this process")
    return [
        time_signing("sign ob3-di, plain pyld", facts, plain, "full JSON-LD -> RDFC-1.0 per credential"),
        time_signing(
            "sign ob3-di",
            facts,
            CredentialSigner(ring, [DATA_INTEGRITY]).sign,
            "as shipped: JSON-LD expanded once per rule, RDFC-1.0 per credential",
        ),
        time_signing("sign ob3-jwt", facts, CredentialSigner(ring, [JWT]).sign, "ES256 VC-JWT"),
        time_signing("sign both", facts, CredentialSigner(ring, FORMATS).sign, "what the issuer does"),
    ]


# --- report ------------------------------------------------------------------------------------------


def ratios(results: list[Result]) -> dict[str, float]:
    """Per-second throughput relative to one renderer's steady state: the smaller, the costlier."""
    phases = {r.phase: r for r in results}
    needed = ("broker passthrough", "issuer, all formats", "renderer, 1 worker")
    if any(name not in phases for name in needed):
        return {}
    passthrough, issuer = phases[needed[0]].rate, phases[needed[1]].rate
    render = phases[needed[2]].details["steady_per_second"]
    if not render:
        return {}
    return {
        "passthrough": round(passthrough / render, 1),
        "issuer": round(issuer / render, 1),
        "renderer": 1.0,
    }


def table(results: list[Result], total: float, broker_storage: str) -> str:
    lines = [
        f"e-Backpack benchmark: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, Tansu (log in {broker_storage}) + SeaweedFS",
        f"run took {total:.0f} s; load average before it {LOAD_BEFORE:.2f} (other load skews all)",
        "",
        f"{'phase':<24}{'items':>15}{'seconds':>10}{'per second':>13}{'ms each':>10}",
    ]
    for r in results:
        ms = 1000 / r.rate if r.rate else 0.0
        lines.append(f"{r.phase:<24}{r.items:>8} {r.unit:<6}{r.seconds:>10.2f}{r.rate:>13.1f}{ms:>10.2f}")
        lines.append(f"  {r.note}")
    ratio = ratios(results)
    if ratio:
        lines += [
            "",
            "ratios, per second (passthrough msgs : issuer events : 1 renderer steady PDFs) = "
            f"{ratio['passthrough']:g} : {ratio['issuer']:g} : 1",
        ]
    phases = {r.phase: r for r in results}
    one, two = phases.get("renderer, 1 worker"), phases.get("renderer, 2 workers")
    if one and two and one.rate:
        lines.append(
            f"2 renderers vs 1: x{two.rate / one.rate:.2f} wall, "
            f"x{two.details['steady_per_second'] / max(one.details['steady_per_second'], 1e-9):.2f}"
            " steady"
        )
    signed, unsigned = phases.get("issuer, all formats"), phases.get("issuer, signing off")
    if signed and unsigned and unsigned.details["awards_per_second"]:
        on, off = signed.details["awards_per_second"], unsigned.details["awards_per_second"]
        lines.append(f"issuer awards/s, all formats vs signing off: {on:.1f} / {off:.1f} = x{on / off:.2f}")
    plain, shipped = phases.get("sign ob3-di, plain pyld"), phases.get("sign ob3-di")
    if plain and shipped and plain.rate:
        lines.append(f"ob3-di signing, shape cache vs plain pyld: x{shipped.rate / plain.rate:.1f}")
    return "\n".join(lines)


def report_json(results: list[Result], args: argparse.Namespace, total: float) -> str:
    return json.dumps(
        {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "sqlite": sqlite3.sqlite_version,
                "platform": platform.platform(),
                "load_average_before": round(LOAD_BEFORE, 2),
            },
            "events": args.events,
            "pdfs": args.pdfs,
            "broker_storage": args.broker_storage,
            "run_seconds": round(total, 1),
            "phases": [r.as_json() for r in results],
            "ratios": ratios(results),
        },
        ensure_ascii=False,
    )


# --- main --------------------------------------------------------------------------------------------


PHASES = ("passthrough", "issuer", "renderer", "issuer-unsigned", "signing")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="Moodle events for passthrough and issuer")
    parser.add_argument("--pdfs", type=int, default=200, help="certificates for each renderer run")
    parser.add_argument("--credentials", type=int, default=500, help="credentials signed per proof format")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout (table to stderr)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds any one wait may take")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs, DBs) afterwards")
    add_broker_storage_option(parser)
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated, in this order: {','.join(PHASES)} (default: all)",
    )
    args = parser.parse_args(argv)
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phases) - set(PHASES)
    if unknown or not args.phases:
        parser.error(f"unknown phase(s) {sorted(unknown)}; known: {', '.join(PHASES)}")
    if args.events < 1 or args.pdfs < 2:
        parser.error("need --events >= 1 and --pdfs >= 2")
    return args


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


def run_phases(stack: Settings, tmp: Path, args: argparse.Namespace) -> list[Result]:
    dataset = generate(args.events, seed=DATA_SEED)
    results: list[Result] = []
    if "passthrough" in args.phases:
        results.append(bench_passthrough(stack, dataset.messages, args.timeout))
        say(f"passthrough {results[-1].rate:.0f} msgs/s")
    if "issuer" in args.phases:
        results.append(bench_issuer(stack, tmp, dataset, args.timeout, signing=True))
        say(f"issuer {results[-1].rate:.1f} events/s")
    if "renderer" in args.phases:
        data = certificate_data(args.pdfs, load_rules(SAMPLE_RULES))
        for workers in (1, 2):
            results.append(bench_renderer(stack, tmp, workers, data, args.timeout))
            say(f"renderer x{workers}: {results[-1].rate:.2f} PDFs/s wall")
    if "issuer-unsigned" in args.phases:
        results.append(bench_issuer(stack, tmp, dataset, args.timeout, signing=False))
    if "signing" in args.phases:
        results += bench_signing(tmp, args.credentials)
    return results


def benchmark(args: argparse.Namespace) -> list[Result]:
    with ExitStack() as cleanup:
        tmp = Path(tempfile.mkdtemp(prefix="ebackpack-bench-"))
        if args.keep:
            say(f"data dir (kept): {tmp}")
        else:
            cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        stack = stack_settings(tmp)
        storage = broker_storage(args)
        say(
            f"starting Tansu on {stack.kafka_bootstrap} (log in {storage}) and SeaweedFS S3 on "
            f"{stack.s3_endpoint}"
        )
        cleanup.enter_context(EmbeddedStack(stack, broker_storage=storage))  # stopped before the data dir
        results = run_phases(stack, tmp, args)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def work() -> Report:
        results = benchmark(args)
        total = time.monotonic() - CLOCK
        return table(results, total, args.broker_storage), report_json(results, args, total)

    return run_benchmark("benchmark", work, args.json, (DemoTimeout, StackError))


if __name__ == "__main__":
    sys.exit(main())
