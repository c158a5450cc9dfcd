"""Throughput of the Moodle gateway's inputs, section by section, on one embedded stack in one run.

    .venv/bin/python bench/gateway_benchmark.py [--section webhook] [--requests 200] [--batch 50]
                                                [--clients 4] [--json] [--keep]

Sections (`SECTIONS`, run in that order; `--section` picks some):

- webhook: the webhook app (`services/gateway/webhook.py`) under uvicorn in its own process; this
  process POSTs signed batches of Moodle observer payloads with a few concurrent httpx clients. Timed:
  first request sent -> last 202 received (each 202 means the broker acknowledged every accepted
  event, acks=all). Then the same batches again: all duplicates, so only the ledger is read.
- poller: the log-store poller (`services/gateway/logstore/`) reading a real `mdl_logstore_standard_log`
  on PostgreSQL and on MariaDB (throwaway databases on the machine's servers, dropped at the end): one
  `poll_once` over a backlog of `--log-rows` mixed rows (3 % used events), then over `--used-rows` course
  completions; timed: the poll (read, parse, ledger, publish with acks, checkpoint). Then the history
  import (`import_file`) of the same rows as CSV and JSONL files, each into fresh topics and database.

Progress goes to stderr, the table to stdout (to stderr with `--json`, which puts one JSON object on
stdout). See bench/README.md, section "Gateway", for how to read the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from common import CLOCK, LOAD_BEFORE, BenchError, Report, run_benchmark, say

from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.sample_data import generate
from ebackpack.dev.stack import EmbeddedStack, StackError, free_port
from ebackpack.secret_policy import throwaway_secrets
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import MOODLE_EVENTS
from schemas.moodle import MoodleEvent
from services.gateway.events import USED, moodle_event_id
from services.gateway.webhook import sign

DATA_SEED = 1
SECRET = secrets.token_urlsafe(48)  # strong: the webhook runs as in production (EMBEDDED=false)
ROOT = Path(__file__).resolve().parents[1]


# --- results -----------------------------------------------------------------------------------------


@dataclass
class Result:
    phase: str
    requests: int
    events: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    note: str = ""
    details: dict[str, float] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, p: int) -> float:
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0] if self.latencies_ms else 0.0
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[p - 1]

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("latencies_ms")
        data.pop("note")
        return {
            **data,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events_per_second, 1),
            "requests_per_second": round(self.requests_per_second, 1),
            "p50_ms": round(self.percentile(50), 1),
            "p99_ms": round(self.percentile(99), 1),
        }


@dataclass
class Context:
    """What every section gets: the shared stack, a scratch directory, the command line."""

    stack: Settings
    tmp: Path
    args: argparse.Namespace
    cleanup: ExitStack


def section_settings(ctx: Context, name: str, **update: Any) -> Settings:
    """Own topics and SQLite database on the shared stack; built anew (no cached `db_url` leaks)."""
    return Settings(
        **{
            **ctx.stack.model_dump(),
            "data_dir": ctx.tmp / name,
            "topic_prefix": f"bench.{name}.",
            "s3_bucket": f"bench-{name}",
            "database_url": f"sqlite:///{ctx.tmp / name / 'ebackpack.db'}",
            **update,
        }
    )


# --- section: webhook --------------------------------------------------------------------------------


def observer_payloads(count: int) -> list[dict[str, Any]]:
    """`count` observer payloads in the realistic mix of `generate()` (completions, redeliveries,
    decoys, 4.5 and 5.1 shapes), without the malformed ones: one of those would refuse its whole batch."""
    dataset = generate(int(count * 1.2) + 10, seed=DATA_SEED)
    payloads = []
    for _key, value in dataset.messages:
        try:
            data = json.loads(value)["data"]
            MoodleEvent.model_validate(data)
        except (ValueError, KeyError, TypeError):  # the malformed share of the data set
            continue
        payloads.append(data)
        if len(payloads) == count:
            return payloads
    raise BenchError(f"generate() gave only {len(payloads)} valid payloads, wanted {count}")


def used_ids(site: str, payloads: list[dict[str, Any]]) -> set[str]:
    """The ids the webhook publishes the payloads under (redeliveries share one)."""
    ids = set()
    for data in payloads:
        event = MoodleEvent.model_validate(data)
        if event.eventname in USED:
            ids.add(moodle_event_id(site, event))
    return ids


@contextmanager
def webhook_server(settings: Settings, log: Path, timeout: float) -> Iterator[str]:
    """`uvicorn --factory services.gateway.webhook:from_environment` in a child process."""
    port = free_port()
    env = {
        **os.environ,
        "EBACKPACK_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "EBACKPACK_TOPIC_PREFIX": settings.topic_prefix,
        "EBACKPACK_DATABASE_URL": settings.db_url,
        "EBACKPACK_DATA_DIR": str(settings.data_dir),
        "EBACKPACK_EMBEDDED": "false",
        "EBACKPACK_S3_SECRET_KEY": settings.s3_secret_key,
        "EBACKPACK_CODE_SECRET": settings.code_secret.get_secret_value() if settings.code_secret else "",
        "EBACKPACK_SITE_ID": settings.site_id,
        "EBACKPACK_GATEWAY_SECRET": SECRET,
        "EBACKPACK_GATEWAY_MAX_PENDING": str(settings.gateway_max_pending),
    }
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "services.gateway.webhook:from_environment",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise BenchError(f"the webhook server exited with {proc.returncode}; see {log}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"the webhook server did not answer within {timeout:.0f} s; see {log}")
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def signed_headers(site: str, body: bytes) -> dict[str, str]:
    stamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "X-Ebackpack-Site": site,
        "X-Ebackpack-Timestamp": str(stamp),
        "X-Ebackpack-Signature": sign(SECRET, stamp, body),
    }


async def post_all(
    url: str, site: str, bodies: list[bytes], clients: int, timeout: float
) -> tuple[float, list[float], dict[str, int]]:
    """`clients` concurrent senders, each one request at a time. Returns (seconds, latencies in ms,
    summed answers). Any answer but 202 stops the run."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    totals = {"accepted": 0, "duplicates": 0, "ignored": 0}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def sender(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            answer = await client.post(
                f"{url}/moodle/events", content=body, headers=signed_headers(site, body)
            )
            latencies.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 202:
                raise BenchError(f"webhook answered {answer.status_code}: {answer.text[:300]}")
            for key, value in answer.json().items():
                totals[key] += value

    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        started = time.perf_counter()
        await asyncio.gather(*(sender(client) for _ in range(clients)))
        seconds = time.perf_counter() - started
    return seconds, latencies, totals


def bench_webhook(ctx: Context) -> list[Result]:
    args = ctx.args
    settings = section_settings(ctx, "webhook")
    prepare(settings)
    site = settings.site_id
    payloads = observer_payloads(args.requests * args.batch + 1)
    warm, payloads = payloads[0], payloads[1:]
    bodies = [
        json.dumps({"site": site, "events": payloads[i : i + args.batch]}).encode()
        for i in range(0, len(payloads), args.batch)
    ]
    new = len(used_ids(site, payloads) - used_ids(site, [warm]))
    say(
        f"webhook: {len(bodies)} requests x {args.batch} events "
        f"({sum(len(b) for b in bodies) / len(bodies) / 1024:.0f} KiB each), {args.clients} clients; "
        f"{new} distinct used events among them"
    )
    results = []
    with webhook_server(settings, ctx.tmp / "webhook.log", args.timeout) as url:
        # Warm-up, not counted: the server's producer connects to the broker on its first request.
        warm_totals = asyncio.run(post_all(url, site, [json.dumps(warm).encode()], 1, args.timeout))[2]
        for phase, note in (
            ("webhook, new events", "each 202 after the broker acked every event"),
            ("webhook, replayed", "same batches again: all duplicates, ledger only"),
        ):
            say(f"{phase}: posting")
            seconds, latencies, totals = asyncio.run(post_all(url, site, bodies, args.clients, args.timeout))
            result = Result(
                phase,
                len(bodies),
                len(payloads),
                seconds,
                latencies,
                f"{note}; answers: {totals['accepted']} accepted "
                f"({totals['accepted'] / seconds:.0f}/s), {totals['duplicates']} duplicates, "
                f"{totals['ignored']} ignored",
                {k: float(v) for k, v in totals.items()},
            )
            say(
                f"{phase}: {result.events_per_second:.0f} events/s, {result.requests_per_second:.1f} "
                f"requests/s, p50 {result.percentile(50):.0f} ms, p99 {result.percentile(99):.0f} ms"
            )
            results.append(result)
    accepted = int(results[0].details["accepted"])
    if accepted != new or results[1].details["accepted"] != 0:
        raise BenchError(
            f"accepted {accepted} then {results[1].details['accepted']:.0f} events; expected {new} then 0"
        )
    on_topic = len(read_topics(settings, [settings.topic(MOODLE_EVENTS)]))
    if on_topic != accepted + warm_totals["accepted"]:
        raise BenchError(
            f"{on_topic} messages on {MOODLE_EVENTS}, expected {accepted} + "
            f"{warm_totals['accepted']} of the warm-up"
        )
    say(f"webhook: {on_topic} messages on {settings.topic(MOODLE_EVENTS)}, as answered")
    return results


# --- section: poller ---------------------------------------------------------------------------------
# The log-store poller (`services/gateway/logstore/`) on real Moodle tables, PostgreSQL and MariaDB
# (throwaway databases, dropped at the end), and the history import from CSV / JSONL exports.

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB_ADMIN = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "database": "test"}
MYSQL_DDL = ROOT / "infra" / "moodle" / "logstore_standard_log.mysql.sql"
PG_DDL = ROOT / "infra" / "moodle" / "logstore_standard_log.pg.sql"
LOG_START = 1768201200  # 2026-01-12 07:00 UTC


def log_rows(count: int, used_share: float, seed: int, first_id: int = 1) -> list[dict[str, Any]]:
    """`mdl_logstore_standard_log` rows: course completions (the cron user acting, the learner in
    `relateduserid`, `other` PHP-serialized or JSON) with probability `used_share`, page views otherwise.
    Every completion is a distinct event (own completion id and second)."""
    import random

    import phpserialize

    rng = random.Random(seed)
    rows = []
    for n in range(count):
        learner, course = 100_000 + rng.randrange(5000), rng.choice((42, 43, 44, 99))
        row: dict[str, Any] = {
            "id": first_id + n,
            "component": "core",
            "objecttable": None,
            "objectid": None,
            "crud": "r",
            "edulevel": 2,
            "contextid": course + 1145,
            "contextlevel": 50,
            "contextinstanceid": course,
            "userid": learner,
            "courseid": course,
            "relateduserid": None,
            "anonymous": 0,
            "other": "N;",
            "timecreated": LOG_START + first_id + n,
            "origin": "web",
            "ip": "10.20.0.15",
            "realuserid": None,
        }
        if rng.random() < used_share:
            other = {"relateduserid": learner}
            row |= {
                "eventname": "\\core\\event\\course_completed",
                "action": "completed",
                "target": "course",
                "objecttable": "course_completions",
                "objectid": first_id + n,
                "crud": "u",
                "userid": 2,
                "relateduserid": learner,
                "origin": "cli",
                "other": phpserialize.dumps(other).decode() if n % 2 else json.dumps(other),
            }
        else:
            row |= {
                "eventname": "\\mod_page\\event\\course_module_viewed",
                "component": "mod_page",
                "action": "viewed",
                "target": "course_module",
                "objecttable": "page",
                "objectid": rng.randint(1, 900),
                "contextlevel": 70,
            }
        rows.append(row)
    return rows


@dataclass
class MoodleTable:
    """A throwaway Moodle database with the log table, on one server."""

    kind: str  # postgresql | mariadb
    url: str
    insert: Callable[[list[dict[str, Any]]], None]


def moodle_table(ctx: Context, kind: str) -> MoodleTable | None:
    """Creates the database and the table; None (and a note) when the server is not there."""
    import uuid

    from services.gateway.logstore.reader import COLUMNS

    name = f"bench_moodle_{uuid.uuid4().hex[:8]}"
    cols = ", ".join(COLUMNS)
    if kind == "postgresql":
        import psycopg

        if not PG_DDL.exists():
            say(f"poller: {PG_DDL} not found: PostgreSQL rows skipped")
            return None
        try:
            psycopg.connect(PG_ADMIN, connect_timeout=3).close()
        except psycopg.OperationalError as exc:
            say(f"poller: PostgreSQL not reachable at {PG_ADMIN} ({exc}): its rows skipped")
            return None
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')

        def drop_pg() -> None:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        ctx.cleanup.callback(drop_pg)
        dsn = f"postgresql://postgres@127.0.0.1:5432/{name}"
        with psycopg.connect(dsn) as conn:
            conn.execute(PG_DDL.read_text(encoding="utf-8"))

        def insert_pg(rows: list[dict[str, Any]]) -> None:
            with (
                psycopg.connect(dsn) as conn,
                conn.cursor().copy(f"COPY mdl_logstore_standard_log ({cols}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row([row[c] for c in COLUMNS])

        return MoodleTable(kind, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", insert_pg)

    import pymysql

    try:
        admin = pymysql.connect(**MARIADB_ADMIN, connect_timeout=3, autocommit=True)
    except pymysql.err.OperationalError as exc:
        say(f"poller: MariaDB not reachable at 127.0.0.1:3306 ({exc}): its rows skipped")
        return None
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")

    def drop_mariadb() -> None:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()

    ctx.cleanup.callback(drop_mariadb)
    connect = {**MARIADB_ADMIN, "database": name, "charset": "utf8mb4"}
    ddl = "\n".join(
        line
        for line in MYSQL_DDL.read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("--")
    )
    with pymysql.connect(**connect) as conn, conn.cursor() as cursor:
        for statement in ddl.split(";"):
            if statement.strip():
                cursor.execute(statement)

    def insert_mariadb(rows: list[dict[str, Any]]) -> None:
        sql = f"INSERT INTO mdl_logstore_standard_log ({cols}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
        with pymysql.connect(**connect) as conn:
            with conn.cursor() as cursor:
                cursor.executemany(sql, [[row[c] for c in COLUMNS] for row in rows])
            conn.commit()

    return MoodleTable(kind, f"mysql+pymysql://root@127.0.0.1:3306/{name}?charset=utf8mb4", insert_mariadb)


class TimedPublisher:
    """`MoodleEventPublisher` that keeps how long each batch took to be acknowledged."""

    def __init__(self, settings: Settings) -> None:
        from services.gateway.publisher import MoodleEventPublisher

        self.inner = MoodleEventPublisher(settings)
        self.latencies_ms: list[float] = []

    def publish(self, messages: list[tuple[bytes, bytes]]) -> object:
        started = time.perf_counter()
        ends = self.inner.publish(messages)
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        return ends

    def close(self) -> None:
        self.inner.close()


def bench_poller(ctx: Context) -> list[Result]:
    from services.gateway.logstore.poller import LogStorePoller
    from services.gateway.logstore.reader import COLUMNS

    args = ctx.args
    mixed = log_rows(args.log_rows, 0.03, seed=DATA_SEED, first_id=101)
    used = log_rows(args.used_rows, 1.0, seed=DATA_SEED + 1, first_id=101 + args.log_rows)
    warm = log_rows(100, 1.0, seed=DATA_SEED + 2, first_id=1)
    n_mixed_used = sum(r["eventname"] in USED for r in mixed)
    results: list[Result] = []
    for kind in args.databases:
        table_ = moodle_table(ctx, kind)
        if table_ is None:
            continue
        short = "pg" if kind == "postgresql" else kind
        settings = section_settings(ctx, f"poller-{short}", moodle_db_url=table_.url)
        sessions = prepare(settings)
        publisher = TimedPublisher(settings)
        ctx.cleanup.callback(publisher.close)
        poller = LogStorePoller(settings, sessions, publisher, from_start=True)
        table_.insert(warm)
        if poller.poll_once().published != len(warm):  # warm-up, not counted: connections, metadata
            raise BenchError("poller: the warm-up rows were not all published")
        for label, rows, expected in (
            (f"poll {short}, mixed", mixed, n_mixed_used),
            (f"poll {short}, used", used, len(used)),
        ):
            say(f"{label}: inserting {len(rows)} rows ({expected} used events)")
            table_.insert(rows)
            publisher.latencies_ms = []
            started = time.perf_counter()
            result = poller.poll_once()
            seconds = time.perf_counter() - started
            if result.published != expected or result.dead_letters:
                raise BenchError(
                    f"{label}: published {result.published} of {expected} events, "
                    f"{result.malformed} malformed"
                )
            results.append(
                Result(
                    label,
                    len(publisher.latencies_ms),
                    len(rows),
                    seconds,
                    publisher.latencies_ms,
                    f"one poll_once over a backlog of {len(rows)} log rows: "
                    f"{result.published} events published ({result.published / seconds:.0f}/s); "
                    "req = publish batches, p50/p99 = their acks",
                    {
                        "published": float(result.published),
                        "published_per_second": result.published / seconds,
                    },
                )
            )
            say(f"{label}: {len(rows) / seconds:.0f} log rows/s, {result.published / seconds:.0f} events/s")
        on_topic = len(read_topics(settings, [settings.topic(MOODLE_EVENTS)]))
        if on_topic != len(warm) + n_mixed_used + len(used):
            raise BenchError(
                f"poller {kind}: {on_topic} messages on the topic, expected "
                f"{len(warm) + n_mixed_used + len(used)}"
            )

    # The history import: the same rows as a PostgreSQL `COPY ... CSV HEADER` export and as JSONL.
    import csv

    files = {"mixed.csv": mixed, "used.csv": used, "used.jsonl": used}
    for file_name, rows in files.items():
        path = ctx.tmp / file_name
        with path.open("w", encoding="utf-8", newline="") as out:
            if file_name.endswith(".csv"):
                writer = csv.writer(out)
                writer.writerow(COLUMNS)
                writer.writerows(["" if r[c] is None else r[c] for c in COLUMNS] for r in rows)
            else:
                out.writelines(json.dumps({c: r[c] for c in COLUMNS}) + "\n" for r in rows)
    for file_name, rows in files.items():
        label = f"import {file_name.split('.')[1]}, {file_name.split('.')[0]}"
        settings = section_settings(ctx, f"import-{file_name.replace('.', '-')}")
        sessions = prepare(settings)
        publisher = TimedPublisher(settings)
        ctx.cleanup.callback(publisher.close)
        importer = LogStorePoller(settings, sessions, publisher)
        importer.import_file(_warm_file(ctx, warm))  # warm-up, not counted
        publisher.latencies_ms = []
        expected = sum(r["eventname"] in USED for r in rows)
        started = time.perf_counter()
        result = importer.import_file(ctx.tmp / file_name)
        seconds = time.perf_counter() - started
        if result.published != expected or result.read != len(rows):
            raise BenchError(
                f"{label}: read {result.read} of {len(rows)} rows, published "
                f"{result.published} of {expected} events"
            )
        results.append(
            Result(
                label,
                len(publisher.latencies_ms),
                len(rows),
                seconds,
                publisher.latencies_ms,
                f"{(ctx.tmp / file_name).stat().st_size / 1e6:.1f} MB; {result.published} events published "
                f"({result.published / seconds:.0f}/s); req = publish batches, p50/p99 = their acks",
                {"published": float(result.published), "published_per_second": result.published / seconds},
            )
        )
        say(f"{label}: {len(rows) / seconds:.0f} rows/s, {result.published / seconds:.0f} events/s")
    return results


def _warm_file(ctx: Context, rows: list[dict[str, Any]]) -> Path:
    path = ctx.tmp / "warm.jsonl"
    if not path.exists():
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


Section = Callable[[Context], list[Result]]
SECTIONS: dict[str, Section] = {
    "webhook": bench_webhook,
    "poller": bench_poller,
}


# --- report ------------------------------------------------------------------------------------------


def table(results: list[Result], total: float) -> str:
    lines = [
        f"e-Backpack gateway benchmark: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        "Tansu + SQLite, client + server + broker on one machine",
        f"run took {total:.0f} s; load average before it {LOAD_BEFORE:.2f} (other load skews all)",
        "",
        f"{'phase':<22}{'requests':>9}{'events':>8}{'seconds':>9}{'events/s':>10}{'req/s':>8}"
        f"{'p50 ms':>8}{'p99 ms':>8}",
    ]
    for r in results:
        lines.append(
            f"{r.phase:<22}{r.requests:>9}{r.events:>8}{r.seconds:>9.2f}{r.events_per_second:>10.0f}"
            f"{r.requests_per_second:>8.1f}{r.percentile(50):>8.1f}{r.percentile(99):>8.1f}"
        )
        if r.note:
            lines.append(f"  {r.note}")
    return "\n".join(lines)


def report_json(results: list[Result], args: argparse.Namespace, total: float) -> str:
    return json.dumps(
        {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "load_average_before": round(LOAD_BEFORE, 2),
            },
            "sections": args.section,
            "requests": args.requests,
            "batch": args.batch,
            "clients": args.clients,
            "run_seconds": round(total, 1),
            "phases": [r.as_json() for r in results],
        },
        ensure_ascii=False,
    )


# --- main --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--section",
        action="append",
        choices=list(SECTIONS),
        help="run only this section (repeatable); default: all",
    )
    parser.add_argument("--requests", type=int, default=200, help="webhook: requests per pass")
    parser.add_argument("--batch", type=int, default=50, help="webhook: events per request (<= 500)")
    parser.add_argument("--clients", type=int, default=4, help="webhook: concurrent senders")
    parser.add_argument(
        "--log-rows",
        type=int,
        default=100_000,
        help="poller: rows of the mixed log backlog (3 %% of them used events)",
    )
    parser.add_argument(
        "--used-rows",
        type=int,
        default=20_000,
        help="poller: rows of the backlog of used events only (course completions)",
    )
    parser.add_argument(
        "--database",
        dest="databases",
        action="append",
        choices=["postgresql", "mariadb"],
        help="poller: the Moodle database server(s) to read (repeatable); default: both",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout (table to stderr)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds any one wait may take")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs, DBs) afterwards")
    args = parser.parse_args(argv)
    args.section = args.section or list(SECTIONS)
    args.databases = args.databases or ["postgresql", "mariadb"]
    if args.requests < 1 or not 1 <= args.batch <= 500 or args.clients < 1:
        parser.error("need --requests >= 1, 1 <= --batch <= 500, --clients >= 1")
    return args


def stack_settings(tmp: Path) -> Settings:
    fields: dict[str, Any] = {
        "data_dir": tmp / "stack",
        "embedded": False,
        "kafka_bootstrap": f"127.0.0.1:{free_port()}",
        "s3_endpoint": f"http://127.0.0.1:{free_port()}",
        **throwaway_secrets(),
    }
    return Settings(**fields)


def benchmark(args: argparse.Namespace) -> list[Result]:
    with ExitStack() as cleanup:
        tmp = Path(tempfile.mkdtemp(prefix="ebackpack-gateway-bench-"))
        if args.keep:
            say(f"data dir (kept): {tmp}")
        else:
            cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        stack = stack_settings(tmp)
        say(f"starting Tansu on {stack.kafka_bootstrap} and SeaweedFS S3 on {stack.s3_endpoint}")
        cleanup.enter_context(EmbeddedStack(stack))  # stopped before the data dir goes
        ctx = Context(stack, tmp, args, cleanup)
        results: list[Result] = []
        for name in SECTIONS:
            if name in args.section:
                with ExitStack() as section_cleanup:
                    ctx.cleanup = section_cleanup
                    results += SECTIONS[name](ctx)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def work() -> Report:
        results = benchmark(args)
        total = time.monotonic() - CLOCK
        return table(results, total), report_json(results, args, total)

    return run_benchmark("benchmark", work, args.json, (StackError,))


if __name__ == "__main__":
    sys.exit(main())
