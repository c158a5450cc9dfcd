"""The log-store poller, the backfill and the history import on real Moodle databases (PostgreSQL and
MariaDB): a week of a site's log (100k rows) committed partly out of id order between polls, published
to the embedded broker, read back and fed to the issuer; the awards must be exactly the generator's."""

from __future__ import annotations

import csv
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import phpserialize
import pytest
from sqlalchemy import select

from ebackpack.adapters.persistence.engine import make_engine, migrate, session_factory
from ebackpack.adapters.persistence.tables import AwardRow, GatewayEventRow
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.sample_data import load_profiles, rule_course_ids, synthetic_learner
from ebackpack.domain.rules import load_rules
from ebackpack.ops.deadletters import dead_letters, inspect, replay
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import MOODLE_EVENTS, create_topics
from schemas.moodle import (
    COURSE_COMPLETED,
    COURSE_COMPLETION_UPDATED,
    MODULE_COMPLETION_UPDATED,
    USER_DELETED,
    USER_GRADED,
    Profiles,
)
from services.gateway.events import USED, Message, PublishedEvents
from services.gateway.logstore.dead_letters import SOURCE_DEAD_LETTER, DeadLetterPublisher
from services.gateway.logstore.intake import PollResult
from services.gateway.logstore.poller import LogStorePoller
from services.gateway.logstore.reader import COLUMNS
from services.gateway.logstore.replays import ReplayedRows
from services.gateway.logstore.window import WindowState
from services.gateway.profiles import store_profiles
from services.gateway.publisher import BrokerUnavailable, MoodleEventPublisher
from services.issuer.service import IssuerService
from tests.integration.moodle_stand_in import Broker

pytestmark = pytest.mark.integration

WORK = Path(__file__).resolve().parents[3]
PG_DDL = WORK / "shared" / "fixtures" / "moodle" / "logstore_standard_log.pg.sql"
MYSQL_DDL = Path(__file__).resolve().parents[2] / "infra" / "moodle" / "logstore_standard_log.mysql.sql"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}

SITE = "moodle.example.org"
START = 1768201200  # Monday 2026-01-12 07:00 UTC
WEEK = 7 * 86400
FIRST_ID = 4_000_001
CRON_USER = 2
TEACHERS = (311, 312, 318)
USER_UPDATED = "\\core\\event\\user_updated"


# --- the Moodle databases ----------------------------------------------------------------------------


@dataclass
class MoodleDb:
    kind: str  # postgresql | mariadb
    url: str  # SQLAlchemy URL for the poller
    dbapi: Callable[[], Any]  # a new DB-API connection (autocommit off)
    prefix: str = "mdl_"
    tables: list[str] = field(default_factory=list)

    @property
    def table(self) -> str:
        return f"{self.prefix}logstore_standard_log"

    def create_table(self, prefix: str = "mdl_") -> None:
        self.prefix = prefix
        ddl = (PG_DDL if self.kind == "postgresql" else MYSQL_DDL).read_text(encoding="utf-8")
        ddl = "\n".join(line for line in ddl.splitlines() if not line.lstrip().startswith("--"))
        with self.connect() as conn:
            cursor = conn.cursor()
            for statement in ddl.split(";"):
                if statement.strip():
                    cursor.execute(statement.replace("mdl_", prefix))
            conn.commit()

    def connect(self) -> Any:
        return self.dbapi()

    def insert(self, rows: list[dict[str, Any]], *, explicit_ids: bool = True) -> list[int]:
        """One transaction; returns the ids (allocated by the sequence when `explicit_ids` is off)."""
        if not rows:
            return []
        columns = COLUMNS if explicit_ids else COLUMNS[1:]
        with self.connect() as conn:
            cursor = conn.cursor()
            if self.kind == "postgresql" and explicit_ids:
                with cursor.copy(f"COPY {self.table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row([row[c] for c in columns])
                ids = [row["id"] for row in rows]
            elif explicit_ids:
                cursor.executemany(self._insert_sql(columns), [[row[c] for c in columns] for row in rows])
                ids = [row["id"] for row in rows]
            else:
                ids = [self.insert_one(cursor, row) for row in rows]
            conn.commit()
        return ids

    def _insert_sql(self, columns: tuple[str, ...]) -> str:
        return f"INSERT INTO {self.table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"

    def insert_one(self, cursor: Any, row: dict[str, Any]) -> int:
        """Insert without an id (the sequence allocates it) on an open transaction; returns the id."""
        sql = self._insert_sql(COLUMNS[1:])
        values = [row[c] for c in COLUMNS[1:]]
        if self.kind == "postgresql":
            cursor.execute(sql + " RETURNING id", values)
            return int(cursor.fetchone()[0])
        cursor.execute(sql, values)
        return int(cursor.lastrowid)

    def select_all(self) -> list[dict[str, Any]]:
        with self.connect() as conn:
            cursor = conn.cursor()
            cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM {self.table} ORDER BY id")
            return [dict(zip(COLUMNS, values, strict=True)) for values in cursor.fetchall()]

    def export_csv(self, path: Path) -> None:
        """As the database's own tools export it: PostgreSQL `COPY ... CSV HEADER` (NULL = empty),
        MariaDB as the `mariadb` client / Adminer write it (NULL = `NULL`)."""
        if self.kind == "postgresql":
            with self.connect() as conn, path.open("wb") as out:
                cursor = conn.cursor()
                query = f"COPY (SELECT * FROM {self.table} ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)"
                with cursor.copy(query) as copy:
                    for chunk in copy:
                        out.write(chunk)
            return
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(COLUMNS)
            for row in self.select_all():
                writer.writerow(["NULL" if row[c] is None else row[c] for c in COLUMNS])


def _postgres(request: pytest.FixtureRequest) -> Iterator[MoodleDb]:
    import psycopg

    try:
        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}: {exc}")
    name = f"moodle_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = f"postgresql://postgres@127.0.0.1:5432/{name}"
    yield MoodleDb(
        "postgresql", f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", lambda: psycopg.connect(dsn)
    )
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _mariadb(request: pytest.FixtureRequest) -> Iterator[MoodleDb]:
    import pymysql

    try:
        pymysql.connect(**MARIADB, database="test", connect_timeout=3).close()
    except pymysql.err.OperationalError as exc:
        pytest.skip(
            f"MariaDB not reachable at {MARIADB['host']}:{MARIADB['port']} (root, empty password): {exc}"
        )
    name = f"moodle_{uuid.uuid4().hex[:10]}"
    admin = pymysql.connect(**MARIADB, database="test", autocommit=True)
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    yield MoodleDb(
        "mariadb",
        f"mysql+pymysql://root@127.0.0.1:3306/{name}?charset=utf8mb4",
        lambda: pymysql.connect(**MARIADB, database=name, charset="utf8mb4"),
    )
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@pytest.fixture(params=["postgresql", "mariadb"])
def moodle_db(request: pytest.FixtureRequest) -> Iterator[MoodleDb]:
    yield from (_postgres if request.param == "postgresql" else _mariadb)(request)


# --- a week of a Moodle site's log ---------------------------------------------------------------------


@dataclass
class SiteLog:
    rows: list[dict[str, Any]]  # in id order
    expected: frozenset[tuple[int, int]]  # (learner, course) awards, if every row commits
    malformed: frozenset[int]  # ids of rows the gateway cannot parse
    late: dict[int, int]  # id -> how many phases after its neighbours it commits
    rolled_back: frozenset[int]  # ids allocated by transactions that rolled back: never committed
    profiles: Profiles

    def committed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["id"] not in self.rolled_back]

    def expected_awards(self) -> frozenset[tuple[int, int]]:
        return frozenset(self._pairs(self.committed()))

    @staticmethod
    def _pairs(rows: list[dict[str, Any]]) -> set[tuple[int, int]]:
        return {
            (r["relateduserid"], r["courseid"])
            for r in rows
            if r["eventname"] == COURSE_COMPLETED
            and r["courseid"] in rule_course_ids()
            and not r.get("_malformed")
        }


def _other(value: Any, rng: random.Random) -> str | None:
    """`other` as an upgraded site holds it: PHP serialize() or JSON, and SQL NULL for nothing."""
    style = rng.random()
    if value is None and style < 0.2:
        return None
    if style < 0.6:
        return phpserialize.dumps(value).decode()
    return json.dumps(value)


def generate_log(rows: int = 100_000, seed: int = 7, learners: int = 1500) -> SiteLog:
    """A week of `mdl_logstore_standard_log`: mostly views, module completions and grades; 1.5 % course
    completions (the cron user, a teacher or another user as `userid`, the learner in `relateduserid`;
    Moodle 4.5 `other` with relateduserid or 5.1 null; some re-completions of the same course), the
    `course_completion_updated` decoy, user_updated / user_deleted, and a few completions whose `other`
    is cut off (malformed). 1 % of the ids commit one or two polls late, 0.1 % never (rolled back)."""
    rng = random.Random(seed)
    rule_courses = rule_course_ids()
    courses = [c.id for c in load_profiles().courses]
    other_courses = [c for c in courses if c not in rule_courses]
    people = [synthetic_learner(i) for i in range(learners + 100)]
    pool = [p.id for p in people[:learners]]
    broken_pool = [p.id for p in people[learners:]]  # they only ever complete with a malformed row
    deleted_pool = list(range(900_000, 900_600))  # users without profiles and without completions
    times = sorted(rng.sample(range(START, START + WEEK), rows))
    kinds = [
        "module_viewed",
        "course_viewed",
        "loggedin",
        "module_completion",
        "graded",
        "completion",
        "completion_updated",
        "user_updated",
        "user_deleted",
        "malformed",
    ]
    weights = [40, 20, 5, 14, 12.3, 1.5, 1.5, 1.4, 0.25, 0.05]
    completed: list[tuple[int, int, int]] = []  # learner, course, course_completions id
    done_pairs: set[tuple[int, int]] = set()
    out: list[dict[str, Any]] = []
    for index, when in enumerate(times):
        kind = rng.choices(kinds, weights)[0]
        learner = rng.choice(pool)
        course = rng.choice(courses)
        row: dict[str, Any] = {
            "id": FIRST_ID + index,
            "component": "core",
            "objecttable": None,
            "objectid": None,
            "contextid": course + 1145,
            "contextlevel": 50,
            "contextinstanceid": course,
            "userid": learner,
            "courseid": course,
            "relateduserid": None,
            "anonymous": 0,
            "timecreated": when,
            "origin": "web",
            "ip": f"10.20.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            "realuserid": None,
        }
        if kind == "module_viewed":
            cmid = course * 9 + rng.randint(1, 10)
            row |= {
                "eventname": "\\mod_page\\event\\course_module_viewed",
                "component": "mod_page",
                "action": "viewed",
                "target": "course_module",
                "objecttable": "page",
                "objectid": rng.randint(1, 900),
                "crud": "r",
                "edulevel": 2,
                "contextid": cmid + 815,
                "contextlevel": 70,
                "contextinstanceid": cmid,
                "other": _other(None, rng),
            }
        elif kind == "course_viewed":
            row |= {
                "eventname": "\\core\\event\\course_viewed",
                "action": "viewed",
                "target": "course",
                "crud": "r",
                "edulevel": 2,
                "other": _other(None, rng),
            }
        elif kind == "loggedin":
            row |= {
                "eventname": "\\core\\event\\user_loggedin",
                "action": "loggedin",
                "target": "user",
                "objecttable": "user",
                "objectid": learner,
                "crud": "r",
                "edulevel": 0,
                "contextid": 1,
                "contextlevel": 10,
                "contextinstanceid": 0,
                "courseid": 0,
                "other": _other({"username": f"u{learner}"}, rng),
            }
        elif kind == "module_completion":
            cmid = course * 9 + rng.randint(1, 10)
            overrideby = rng.choice(TEACHERS) if rng.random() < 0.1 else None
            row |= {
                "eventname": MODULE_COMPLETION_UPDATED,
                "action": "updated",
                "target": "course_module_completion",
                "objecttable": "course_modules_completion",
                "objectid": rng.randint(70_000, 99_999),
                "crud": "u",
                "edulevel": 2,
                "contextid": cmid + 815,
                "contextlevel": 70,
                "contextinstanceid": cmid,
                "userid": overrideby or learner,
                "relateduserid": learner,
                "other": _other(
                    {
                        "relateduserid": learner,
                        "overrideby": overrideby,
                        "completionstate": rng.choice([0, 1, 1, 2, 3]),
                    },
                    rng,
                ),
            }
        elif kind == "graded":
            row |= {
                "eventname": USER_GRADED,
                "action": "graded",
                "target": "user",
                "objecttable": "grade_grades",
                "objectid": rng.randint(300_000, 399_999),
                "crud": "u",
                "edulevel": 2,
                "userid": rng.choice([*TEACHERS, CRON_USER]),
                "relateduserid": learner,
                "other": _other(
                    {
                        "itemid": course * 120 + rng.randint(0, 9),
                        "overridden": False,
                        "finalgrade": rng.randint(0, 1000) / 10,
                    },
                    rng,
                ),
            }
        elif kind in ("completion", "malformed"):
            if kind == "malformed":
                learner, course = rng.choice(broken_pool), rng.choice(rule_courses)
                completion_id = rng.randint(50_000, 59_999)
            elif completed and rng.random() < 0.1:  # completion reset and completed again: same pair
                learner, course, completion_id = rng.choice(completed)
            else:
                course = rng.choice(other_courses) if rng.random() < 0.12 else rng.choice(rule_courses)
                while (learner, course) in done_pairs:
                    learner = rng.choice(pool)
                done_pairs.add((learner, course))
                completion_id = 9000 + len(completed)
                completed.append((learner, course, completion_id))
            actor = rng.choices([CRON_USER, learner, rng.choice(TEACHERS), rng.choice(pool)], [4, 3, 2, 1])[0]
            other = {"relateduserid": learner} if rng.random() < 0.5 else None
            row |= {
                "eventname": COURSE_COMPLETED,
                "action": "completed",
                "target": "course",
                "objecttable": "course_completions",
                "objectid": completion_id,
                "crud": "u",
                "edulevel": 2,
                "contextid": course + 1145,
                "contextinstanceid": course,
                "courseid": course,
                "userid": actor,
                "relateduserid": learner,
                "origin": "cli" if actor == CRON_USER else "web",
                "other": _other(other, rng),
            }
            if kind == "malformed":
                whole = _other({"relateduserid": learner}, random.Random(index)) or "N;"
                row |= {"other": whole[: len(whole) - 4], "_malformed": True}
        elif kind == "completion_updated":
            row |= {
                "eventname": COURSE_COMPLETION_UPDATED,
                "action": "updated",
                "target": "course_completion",
                "crud": "u",
                "edulevel": 1,
                "userid": rng.choice(TEACHERS),
                "other": _other(None, rng),
            }
        elif kind == "user_updated":
            row |= {
                "eventname": USER_UPDATED,
                "action": "updated",
                "target": "user",
                "objecttable": "user",
                "objectid": learner,
                "crud": "u",
                "edulevel": 0,
                "contextid": learner + 4000,
                "contextlevel": 30,
                "contextinstanceid": learner,
                "courseid": 0,
                "userid": rng.choice([learner, CRON_USER]),
                "relateduserid": learner,
                "other": _other(None, rng),
            }
        else:  # user_deleted, with the deleted user's username and e-mail in `other`
            gone = deleted_pool.pop()
            row |= {
                "eventname": USER_DELETED,
                "action": "deleted",
                "target": "user",
                "objecttable": "user",
                "objectid": gone,
                "crud": "d",
                "edulevel": 0,
                "contextid": gone + 4000,
                "contextlevel": 30,
                "contextinstanceid": gone,
                "courseid": 0,
                "userid": CRON_USER,
                "relateduserid": gone,
                "other": _other(
                    {
                        "username": f"gone{gone}",
                        "idnumber": "",
                        "email": f"gone{gone}@example.org",
                        "picture": 0,
                        "mnethostid": 1,
                    },
                    rng,
                ),
            }
        out.append(row)
    ids = [r["id"] for r in out]
    later = rng.sample(ids[100:], len(ids) // 100)
    # Make sure completions are among the late rows, not only views.
    later += rng.sample([r["id"] for r in out[100:] if r["eventname"] == COURSE_COMPLETED], 60)
    late = {i: rng.choice([1, 1, 1, 2]) for i in later}
    rolled_back = frozenset(rng.sample([i for i in ids[100:] if i not in late], len(ids) // 1000))
    malformed = frozenset(r["id"] for r in out if r.get("_malformed") and r["id"] not in rolled_back)
    profiles = Profiles(users=people, courses=load_profiles().courses)
    log_ = SiteLog(out, frozenset(), malformed, late, rolled_back, profiles)
    log_.expected = log_.expected_awards()
    return log_


def db_row(row: dict[str, Any]) -> dict[str, Any]:
    return {c: row[c] for c in COLUMNS}


# --- our side: ledger, broker, issuer -----------------------------------------------------------------


@dataclass
class Gateway:
    settings: Settings
    sessions: Any
    publisher: MoodleEventPublisher


def gateway(base: Settings, name: str, tmp_path: Path, **update: Any) -> Gateway:
    settings = base.model_copy(
        update={
            "topic_prefix": f"t{uuid.uuid4().hex[:8]}.",
            "database_url": f"sqlite:///{tmp_path / f'{name}.db'}",
            "site_id": SITE,
            "credential_formats": "",
            "poll_rescan_seconds": 120,
            **update,
        }
    )
    sessions = prepare(settings)
    return Gateway(settings, sessions, MoodleEventPublisher(settings))


def issue_all(gw: Gateway, profiles: Profiles) -> tuple[list[tuple[int, int]], list[str]]:
    """Every message on the topic through the issuer; returns the awards and the message ids."""
    store_profiles(gw.sessions, profiles)
    records = read_topics(gw.settings, [gw.settings.topic(MOODLE_EVENTS)])
    service = IssuerService(gw.sessions, load_rules(gw.settings.rules_file), gw.settings)
    values = [r.value for r in records]
    for start in range(0, len(values), 500):
        result = service.handle_batch(values[start : start + 500])
        assert not result.invalid and not result.parked, (result.invalid[:3], result.parked[:3])
    with gw.sessions() as session:
        awards = [(a.learner_id, a.course_id) for a in session.scalars(select(AwardRow))]
    return awards, [json.loads(v)["id"] for v in values]


def assert_exact(awards: list[tuple[int, int]], expected: frozenset[tuple[int, int]]) -> None:
    assert len(awards) == len(set(awards)), "an award was issued twice"
    assert set(awards) - expected == set(), "awards nobody earned"
    assert expected - set(awards) == set(), "awards missing"


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- tests ---------------------------------------------------------------------------------------------


def test_a_week_of_log_polled_with_late_commits_gives_exactly_the_expected_awards(
    moodle_db: MoodleDb, settings: Settings, tmp_path: Path
) -> None:
    began = time.monotonic()
    moodle_db.create_table()
    site_log = generate_log()
    gw = gateway(settings, "poller", tmp_path, moodle_db_url=moodle_db.url)
    clock = FakeClock()
    poller = LogStorePoller(gw.settings, gw.sessions, gw.publisher, from_start=True, clock=clock)

    # 10 phases: each commits its share of ids except the late ones, which commit 1 or 2 phases
    # (40 or 80 s of the poller's clock) later, after a poll has seen higher ids. Some never commit.
    rows = site_log.rows
    phases = 10
    size = len(rows) // phases
    chunks = [rows[k * size : (k + 1) * size] for k in range(phases)]
    pending: dict[int, list[dict[str, Any]]] = {}
    totals = PollResult()
    polls: list[PollResult] = []
    for k in range(phases + 2):
        now_rows = [
            r
            for r in (chunks[k] if k < phases else [])
            if r["id"] not in site_log.late and r["id"] not in site_log.rolled_back
        ]
        moodle_db.insert([db_row(r) for r in now_rows])
        moodle_db.insert([db_row(r) for r in pending.pop(k, [])])  # late commits of earlier phases
        for r in chunks[k] if k < phases else []:
            if r["id"] in site_log.late:
                pending.setdefault(k + site_log.late[r["id"]], []).append(r)
        clock.now += 40
        result = poller.poll_once()
        polls.append(result)
        totals.add(result)
    assert not pending
    assert any(p.open_gaps for p in polls[:phases]), "the late rows were not noticed as gaps"
    assert sum(p.rescanned for p in polls) > 0, "the re-scan window was never re-read"

    # The rolled-back ids are still awaited until poll_rescan_seconds have passed, then given up.
    state = poller.window_state()
    assert state is not None and state.open_ids > 0
    clock.now += 121
    final = poller.poll_once()
    totals.add(final)
    state = poller.window_state()
    assert state is not None and state.gaps == [] and state.seen == set()
    assert state.low == state.high == site_log.committed()[-1]["id"]
    assert final.open_gaps == 0

    committed = site_log.committed()
    used = [r for r in committed if r["eventname"] in USED]
    assert {d.id for d in totals.dead_letters} == site_log.malformed
    assert totals.read == len(used)
    assert totals.duplicates == 0 and totals.ignored == 0
    assert totals.published == len(used) - len(site_log.malformed)

    # A second poller from the saved checkpoint has nothing to publish.
    again = LogStorePoller(gw.settings, gw.sessions, gw.publisher, clock=clock).poll_once()
    assert (again.read, again.published) == (0, 0)

    awards, message_ids = issue_all(gw, site_log.profiles)
    assert len(message_ids) == len(set(message_ids)) == totals.published, "an event was published twice"
    with gw.sessions() as session:
        events = select(GatewayEventRow.event_id).where(GatewayEventRow.source != SOURCE_DEAD_LETTER)
        assert len(list(session.scalars(events))) == totals.published
    assert len(site_log.expected) > 900
    assert_exact(awards, site_log.expected)
    gw.publisher.close()
    print(f"\n{moodle_db.kind}: poller test took {time.monotonic() - began:.1f} s")

    # The history import of the same rows, exported by the database's tools as CSV, and as JSONL
    # (every other row with its numbers as strings, as PHP's drivers hand them over).
    csv_path, jsonl_path = tmp_path / "logstore.csv", tmp_path / "logstore.jsonl"
    moodle_db.export_csv(csv_path)
    exported = moodle_db.select_all()
    with jsonl_path.open("w", encoding="utf-8") as out:
        for n, row in enumerate(exported):
            if n % 2:
                row = {k: (str(v) if isinstance(v, int) else v) for k, v in row.items()}
            out.write(json.dumps(row) + "\n")
            if n == 10:
                out.write('{"id": "4000012", "eventname": "\\\\core\\\\event\\\\course_comp\n')  # cut off
                out.write("[1, 2, 3]\n")
    with csv_path.open("a", encoding="utf-8") as out:
        out.write("4999999,\\core\\event\\course_completed,core\n")  # too few fields

    imported = gateway(settings, "import", tmp_path)
    importer = LogStorePoller(imported.settings, imported.sessions, imported.publisher)
    seen: list[tuple[int, int]] = []
    first = importer.import_file(csv_path, "csv", progress=lambda done, total: seen.append((done, total)))
    assert first.published == totals.published and first.duplicates == 0
    assert first.read == len(committed) + 1 and first.ignored == len(committed) - len(used)
    assert {d.id for d in first.dead_letters if d.id is not None} == {str(i) for i in site_log.malformed}
    assert [d.line for d in first.dead_letters if d.id is None] == [len(committed) + 2]
    assert seen and seen[-1][0] == seen[-1][1] == len(committed) + 1
    awards, message_ids = issue_all(imported, site_log.profiles)
    assert len(message_ids) == len(set(message_ids)) == first.published
    assert_exact(awards, site_log.expected)

    again_csv = importer.import_file(csv_path, "csv")
    again_jsonl = importer.import_file(jsonl_path, "jsonl")  # the same events: all known to the ledger
    for result in (again_csv, again_jsonl):
        assert result.published == 0 and result.duplicates == first.published
    assert sorted(d.line or 0 for d in again_jsonl.dead_letters if d.id is None) == [12, 13]
    imported.publisher.close()

    fresh = gateway(settings, "import-jsonl", tmp_path)
    from_jsonl = LogStorePoller(fresh.settings, fresh.sessions, fresh.publisher).import_file(jsonl_path)
    assert from_jsonl.published == totals.published
    awards, _ids = issue_all(fresh, site_log.profiles)
    assert_exact(awards, site_log.expected)
    fresh.publisher.close()
    print(f"{moodle_db.kind}: whole test took {time.monotonic() - began:.1f} s")


class ListPublisher:
    def __init__(self) -> None:
        self.sent: list[Message] = []

    def publish(self, messages: list[Message]) -> None:
        self.sent.extend(messages)


def on_broker(settings: Settings, **update: Any) -> Settings:
    """The test's settings (its own topics on the test broker, created here) with `update`."""
    settings = settings.model_copy(update=update)
    create_topics(settings)
    return settings


def ledger(tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    return session_factory(make_engine(url))


def completion(learner: int, course: int = 42, *, other: str | None = "N;") -> dict[str, Any]:
    return {
        "eventname": COURSE_COMPLETED,
        "component": "core",
        "action": "completed",
        "target": "course",
        "objecttable": "course_completions",
        "objectid": 9000 + learner,
        "crud": "u",
        "edulevel": 2,
        "contextid": course + 1145,
        "contextlevel": 50,
        "contextinstanceid": course,
        "userid": CRON_USER,
        "courseid": course,
        "relateduserid": learner,
        "anonymous": 0,
        "other": other,
        "timecreated": START + learner,
        "origin": "cli",
        "ip": None,
        "realuserid": None,
    }


def learners_of(sent: list[Message]) -> list[int]:
    return [json.loads(value)["data"]["relateduserid"] for _key, value in sent]


def test_rows_committed_out_of_id_order_by_concurrent_transactions_are_not_skipped(
    moodle_db: MoodleDb, settings: Settings, tmp_path: Path
) -> None:
    """Two connections: the first takes id N and commits after the second committed N+1 and a poll saw
    it. Then a transaction that rolls back leaves a gap that is closed after poll_rescan_seconds."""
    moodle_db.create_table(prefix="moo_")  # another $CFG->prefix
    settings = on_broker(
        settings, site_id=SITE, moodle_db_url=moodle_db.url, moodle_db_prefix="moo_", poll_rescan_seconds=120
    )
    publisher, clock = ListPublisher(), FakeClock()
    poller = LogStorePoller(settings, ledger(tmp_path), publisher, from_start=True, clock=clock)
    assert poller.poll_once().read == 0

    slow, fast = moodle_db.connect(), moodle_db.connect()
    n = moodle_db.insert_one(slow.cursor(), completion(1001))  # id N, not committed yet
    n1 = moodle_db.insert_one(fast.cursor(), completion(1002))
    fast.commit()
    assert n1 == n + 1
    first = poller.poll_once()
    assert (first.published, first.open_gaps) == (1, 1) and learners_of(publisher.sent) == [1002]
    slow.commit()  # N commits after N+1 was read: a "last id seen" poller would skip it
    clock.now += 30
    second = poller.poll_once()
    assert (second.published, second.open_gaps) == (1, 0) and learners_of(publisher.sent) == [1002, 1001]

    # A rolled-back transaction's id never commits; a malformed row is a dead letter, not a failure.
    gone = moodle_db.insert_one(slow.cursor(), completion(1003))
    slow.rollback()
    after = moodle_db.insert(
        [completion(1004), completion(1005, other='a:1:{s:13:"relateduserid";i:10'), completion(1006)],
        explicit_ids=False,
    )
    assert after[0] > gone
    third = poller.poll_once()
    assert (third.read, third.published, third.open_gaps) == (3, 2, 1)
    assert [(d.id, d.reason.split(":")[0]) for d in third.dead_letters] == [(after[1], "other")]
    clock.now += 100
    assert poller.poll_once().open_gaps == 1  # still waiting for `gone`
    clock.now += 21
    closed = poller.poll_once()
    assert (closed.read, closed.published, closed.open_gaps) == (0, 0, 0)
    state = poller.window_state()
    assert state == WindowState(low=after[-1], high=after[-1], gaps=[], seen=set())
    assert learners_of(publisher.sent) == [1002, 1001, 1004, 1006]
    slow.close()
    fast.close()


def test_backfill_reads_the_history_since_a_date_rate_limited_and_resumable(
    moodle_db: MoodleDb, settings: Settings, tmp_path: Path
) -> None:
    moodle_db.create_table()
    site_log = generate_log(rows=20_000, seed=3, learners=400)
    moodle_db.insert([db_row(r) for r in site_log.committed()])
    settings = on_broker(settings, site_id=SITE, moodle_db_url=moodle_db.url)
    sessions = ledger(tmp_path)
    since = datetime.fromtimestamp(START + 3 * 86400, UTC)
    wanted = [
        r for r in site_log.committed() if r["eventname"] in USED and r["timecreated"] >= since.timestamp()
    ]

    class Interrupted(Exception):
        pass

    class FailingPublisher(ListPublisher):
        """The broker goes away after two batches: the backfill stops, its checkpoint stays behind."""

        def publish(self, messages: list[Message]) -> None:
            if len(self.sent) > 200:
                raise Interrupted
            super().publish(messages)

    failing = FailingPublisher()
    poller = LogStorePoller(settings, sessions, failing, batch_size=100)
    with pytest.raises(Interrupted):
        poller.history().run(since)
    assert 0 < len(failing.sent) < len(wanted)
    name = f"backfill:{since.isoformat()}"
    assert poller.load_checkpoint(name) is not None

    publisher = ListPublisher()
    progress: list[tuple[int, int]] = []
    resumed = LogStorePoller(settings, sessions, publisher, batch_size=100)
    result = resumed.history().run(since, progress=lambda d, t: progress.append((d, t)))
    ids = [json.loads(v)["id"] for _k, v in failing.sent + publisher.sent]
    assert len(ids) == len(set(ids)) == len(wanted) - len({r["id"] for r in wanted} & site_log.malformed)
    assert result.duplicates == 0 and result.ignored == 0
    assert {d.id for d in result.dead_letters} <= site_log.malformed
    assert progress[-1][0] == progress[-1][1] > 0  # reaches its COUNT estimate
    assert all(a[0] <= b[0] for a, b in zip(progress, progress[1:], strict=False))
    assert resumed.history().run(since).read == 0  # finished: nothing again

    # The rate limit: the ids of the range at 5,000 log rows per second, slept between the batches.
    # Under its own checkpoint name the same history again: all known to the ledger, nothing published.
    sleeps: list[float] = []
    limited = LogStorePoller(settings, sessions, publisher, batch_size=100, sleep=sleeps.append)
    began = time.monotonic()
    repeat = limited.history().run(since, rate_limit_rows_per_s=5000, checkpoint="backfill-again")
    elapsed = time.monotonic() - began
    first_id = min(r["id"] for r in site_log.rows if r["timecreated"] >= since.timestamp())
    span = site_log.committed()[-1]["id"] - first_id + 1
    assert repeat.published == 0 and repeat.duplicates == len(ids)
    assert len(sleeps) >= 2 and sum(sleeps) + elapsed >= 0.9 * span / 5000


# --- dead letters on the broker ------------------------------------------------------------------------

BROKEN_OTHER = 'a:1:{s:13:"relateduserid";i:10'  # PHP serialize() cut off


@pytest.fixture
def postgres_moodle(request: pytest.FixtureRequest) -> Iterator[MoodleDb]:
    yield from _postgres(request)


def published_learners(settings: Settings) -> list[int]:
    records = read_topics(settings, [settings.topic(MOODLE_EVENTS)], idle_ms=500)
    return sorted(json.loads(r.value)["data"]["relateduserid"] for r in records)


def test_a_malformed_row_is_a_dead_letter_on_the_broker_and_its_replay_repaired_is_an_event(
    postgres_moodle: MoodleDb, settings: Settings, tmp_path: Path
) -> None:
    db = postgres_moodle
    db.create_table()
    settings = on_broker(settings, site_id=SITE, moodle_db_url=db.url)
    publisher = MoodleEventPublisher(settings)
    poller = LogStorePoller(settings, ledger(tmp_path), publisher, from_start=True)
    ids = db.insert([completion(2001), completion(2002, other=BROKEN_OTHER)], explicit_ids=False)

    first = poller.poll_once()
    assert (first.published, [d.id for d in first.dead_letters]) == (1, [ids[1]])
    letters = dead_letters(settings)
    assert [(v.consumer, v.source_topic, v.source_partition, v.key) for v in letters] == [
        (settings.topic("gateway-logstore"), settings.topic("moodle.logstore"), -1, str(ids[1]))
    ]
    assert letters[0].reason.startswith("other") and not letters[0].replayed
    kept = inspect(settings, "moodle.logstore.dlq", letters[0].offset)
    assert (kept.decoded["id"], kept.decoded["other"]) == (ids[1], BROKEN_OTHER)
    assert poller.poll_once().read == 0 and len(dead_letters(settings)) == 1

    # Replayed while the row is still broken in Moodle's table: taken again, dead-lettered again.
    assert replay(settings, "moodle.logstore") == 1
    again = poller.poll_once()
    assert (again.replayed, again.published, again.malformed) == (1, 0, 1)
    letters = dead_letters(settings)
    assert [v.replayed for v in letters] == [True, False]
    assert (letters[1].source_topic, letters[1].source_partition) == (settings.topic("moodle.logstore"), 0)
    assert published_learners(settings) == [2001]

    # Repaired in Moodle's table (restored from a backup), replayed: read again from the table, an event.
    with db.connect() as conn:
        conn.cursor().execute(f"UPDATE {db.table} SET other = 'N;' WHERE id = %s", (ids[1],))
        conn.commit()
    assert replay(settings, "moodle.logstore") == 1
    fixed = poller.poll_once()
    assert (fixed.replayed, fixed.published, fixed.malformed) == (1, 1, 0)
    assert published_learners(settings) == [2001, 2002]
    assert poller.poll_once().replayed == 0  # the replayed rows were committed
    assert len(dead_letters(settings)) == 2
    poller.close()
    publisher.close()


def test_a_broker_outage_while_dead_lettering_loses_nothing(
    postgres_moodle: MoodleDb, settings: Settings, tmp_path: Path
) -> None:
    db = postgres_moodle
    db.create_table()
    with Broker(tmp_path / "broker") as broker:
        settings = on_broker(settings, kafka_bootstrap=broker.bootstrap, site_id=SITE, moodle_db_url=db.url)
        sessions = ledger(tmp_path)
        publisher = MoodleEventPublisher(settings, timeout=3)
        dead_letter_publisher = DeadLetterPublisher(settings, PublishedEvents(sessions), timeout=3)

        class HangsTheBroker:
            """The broker hangs just as the first dead letters are sent (the event was acknowledged)."""

            hung = False

            def send(self, rows: Any) -> object:
                if not self.hung:
                    broker.freeze()
                    self.hung = True
                return dead_letter_publisher.send(rows)

        poller = LogStorePoller(
            settings,
            sessions,
            publisher,
            dead_letters=HangsTheBroker(),
            replays=ReplayedRows(settings, timeout=3),
            from_start=True,
        )
        ids = db.insert([completion(3001), completion(3002, other=BROKEN_OTHER)], explicit_ids=False)
        with pytest.raises(BrokerUnavailable):
            poller.poll_once()
        assert poller.window_state() == WindowState(low=0, high=0)  # the checkpoint stayed before the row

        broker.thaw()
        after = poller.poll_once()
        assert (after.published, after.duplicates, [d.id for d in after.dead_letters]) == (0, 1, [ids[1]])
        letters = dead_letters(settings)
        # At least once: a dead letter whose ack the outage swallowed may be there twice, with the same id.
        assert letters and {v.key for v in letters} == {str(ids[1])}
        assert published_learners(settings) == [3001]
        assert poller.poll_once().read == 0
        poller.close()
        dead_letter_publisher.close()
        publisher.close()
