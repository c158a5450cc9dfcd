"""The gateway's log-store poller: Moodle's `mdl_logstore_standard_log`, read-only, on PostgreSQL or
MariaDB/MySQL, published to `moodle.events`; the history backfill from a date; and the history import
from a CSV or JSONL export of that table.

Every path does the same per batch: parse each row (`MoodleLogRow`: PHP-serialized or JSON `other`,
numbers as strings), build the message (`moodle_message`, the webhook's id scheme), drop the events the
ledger (`gateway_events`) has seen, publish and wait for the broker's acks, record the ledger, and only
then save the checkpoint (`gateway_checkpoints`, our database). A crash between any two steps
re-publishes at worst (the ledger and the issuer's idempotent awards absorb it); nothing is lost.
A row that does not parse is a dead letter (logged with its id or line, kept in the result), not fatal.

Rows that commit out of id order
--------------------------------
Moodle writes log rows in buffers at the end of a request (or of a cron task), inside transactions: the
row with id N can commit after N+1 has been read. Keeping only "the last id seen" skips N forever.

The poller keeps, in the checkpoint's `state`:

- `low`: every id <= low is settled (read, or given up as a rolled-back id);
- `high`: the newest id looked at (`SELECT MAX(id)`, committed rows only, at the start of the poll);
- `gaps`: the ids in (low, high] that were missing when looked at, as ranges `[first, last, since]`,
  `since` being the poller's (wall-clock) time the range was first seen missing;
- `seen`: the ids in (low, high] already handled (the used events among them).

A poll: (1) `newest = MAX(id)`; (2) find the ids in the window that are still missing: when there are
no open gaps and `COUNT(*)` of (high, newest] equals `newest - high` (the usual case) nothing has to be
listed, else the ids of (first open gap, newest] are listed (id only: primary-key range) and compared
with the open gaps and the new range; (3) the used rows of (low, newest] are read in id order, in
batches, and those not in `seen` are published; (4) gaps older than `poll_rescan_seconds` are closed
(an id that never commits belonged to a rolled-back transaction) and `low` moves up to just below the
oldest open gap. So each poll re-reads only the window since the oldest open gap, which is empty in
the usual case and at most `poll_rescan_seconds` of the site's used events otherwise.

Why ids and not `timecreated >= now - poll_rescan_seconds`: `timecreated` is the time the event was
triggered, not when its buffer was written; a completion logged early in a long cron run commits
minutes later with an old `timecreated` and would fall outside a time window. Ids are allocated at
insert time, so a missing id is exactly a row that may still commit. The bound that remains: a row
that commits more than `poll_rescan_seconds` after the poller first saw a higher id is skipped (raise
the setting for sites with very long transactions).

A new poller (no checkpoint) starts at the newest row by default: the history is `backfill`'s or
`import_file`'s job, rate-limited. `from_start=True` starts at id 0.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import ValidationError
from sqlalchemy import Engine, bindparam, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.persistence.tables import GatewayCheckpointRow
from ebackpack.config import Settings
from schemas.moodle import MoodleEvent, MoodleLogRow
from services.gateway.events import USED, Message, PublishedEvents, moodle_message, plan, problems

log = logging.getLogger(__name__)

TABLE = "logstore_standard_log"
COLUMNS = (
    "id",
    "eventname",
    "component",
    "action",
    "target",
    "objecttable",
    "objectid",
    "crud",
    "edulevel",
    "contextid",
    "contextlevel",
    "contextinstanceid",
    "userid",
    "courseid",
    "relateduserid",
    "anonymous",
    "other",
    "timecreated",
    "origin",
    "ip",
    "realuserid",
)
NULLABLE = frozenset(
    {"objecttable", "objectid", "courseid", "relateduserid", "other", "origin", "ip", "realuserid"}
)
INTEGER_COLUMNS = frozenset(
    {
        "id",
        "objectid",
        "edulevel",
        "contextid",
        "contextlevel",
        "contextinstanceid",
        "userid",
        "courseid",
        "relateduserid",
        "anonymous",
        "timecreated",
        "realuserid",
    }
)
BATCH = 2000  # rows per read and per publish
ID_CHUNK = 50_000  # ids per listing query (gap detection)
SOURCE_POLLER = "poller"  # in the ledger
SOURCE_IMPORT = "import"
CHECKPOINT = "logstore-poller"
STATE_VERSION = 1

Row = dict[str, Any]
Progress = Callable[[int, int], None]  # (done, total estimate)


class Publisher(Protocol):
    """`MoodleEventPublisher`: returns once the broker acknowledged every message."""

    def publish(self, messages: list[Message]) -> object: ...


class EventPreparer(Protocol):
    """`ProfileSync`: publishes the profiles a batch needs, adds completion dates."""

    def prepare(self, events: Sequence[MoodleEvent]) -> list[MoodleEvent]: ...


# --- reading Moodle's table ------------------------------------------------------------------------------


def moodle_engine(url: str) -> Engine:
    """An engine for the Moodle database that can only read, and sees each commit at once.

    READ COMMITTED: on MySQL/MariaDB the default REPEATABLE READ would pin a snapshot for as long as a
    transaction lasts. Read-only sessions as a second fence (the database user should be read-only too).
    """
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        connect_args["options"] = "-c default_transaction_read_only=on"
    elif url.startswith(("mysql", "mariadb")):
        connect_args["init_command"] = "SET SESSION TRANSACTION READ ONLY"
    return create_engine(url, pool_pre_ping=True, isolation_level="READ COMMITTED", connect_args=connect_args)


class LogStoreReader:
    """Plain SQL on `{prefix}logstore_standard_log` that PostgreSQL and MariaDB/MySQL both run.

    Every read is a primary-key range (`id > :after AND id <= :until ORDER BY id LIMIT n`), filtered to
    the used event names in SQL; one short transaction per query.
    """

    def __init__(self, engine: Engine, prefix: str = "mdl_", events: Sequence[str] = USED) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_]*", prefix):
            raise ValueError(f"not a Moodle table prefix: {prefix!r}")
        self.engine = engine
        self.table = f"{prefix}{TABLE}"
        self.events = list(events)
        self._columns = ", ".join(COLUMNS)

    def _scalar(self, sql: str, **params: Any) -> int | None:
        with self.engine.connect() as connection:
            value = connection.execute(text(sql), params).scalar()
        return None if value is None else int(value)

    def newest_id(self) -> int:
        """The highest committed id (0 for an empty table)."""
        return self._scalar(f"SELECT MAX(id) FROM {self.table}") or 0

    def count_ids(self, after: int, until: int) -> int:
        """Committed rows with `after < id <= until`, any event (primary-key range count)."""
        if until <= after:
            return 0
        return (
            self._scalar(
                f"SELECT COUNT(*) FROM {self.table} WHERE id > :after AND id <= :until",
                after=after,
                until=until,
            )
            or 0
        )

    def ids(self, after: int, until: int, limit: int = ID_CHUNK) -> list[int]:
        """Ids of committed rows with `after < id <= until`, ascending, at most `limit`, any event."""
        query = text(f"SELECT id FROM {self.table} WHERE id > :after AND id <= :until ORDER BY id LIMIT :n")
        with self.engine.connect() as connection:
            return [
                int(i)
                for i in connection.execute(query, {"after": after, "until": until, "n": limit}).scalars()
            ]

    def rows(
        self, after: int, until: int | None = None, limit: int = BATCH, since: int | None = None
    ) -> list[Row]:
        """The used rows with `after < id <= until` (and `timecreated >= since`), in id order."""
        where = ["id > :after", "eventname IN :names"]
        params: dict[str, Any] = {"after": after, "names": self.events, "n": limit}
        if until is not None:
            where.append("id <= :until")
            params["until"] = until
        if since is not None:
            where.append("timecreated >= :since")
            params["since"] = since
        query = text(
            f"SELECT {self._columns} FROM {self.table} WHERE {' AND '.join(where)} ORDER BY id LIMIT :n"
        ).bindparams(bindparam("names", expanding=True))
        with self.engine.connect() as connection:
            return [dict(r) for r in connection.execute(query, params).mappings()]

    def window(self, low: int, until: int, limit: int = BATCH) -> Iterator[list[Row]]:
        """The re-scan query: every used row above the low-water mark, in batches."""
        after = low
        while True:
            batch = self.rows(after, until, limit)
            if batch:
                yield batch
            if len(batch) < limit:
                return
            after = int(batch[-1]["id"])

    def first_id_since(self, since: int) -> int | None:
        """The lowest id of a row triggered at or after `since` (unix time; the timecreated index)."""
        return self._scalar(f"SELECT MIN(id) FROM {self.table} WHERE timecreated >= :since", since=since)


# --- results -----------------------------------------------------------------------------------------


@dataclass
class DeadLetter:
    """A row (or a line of an export) that cannot become an event; nothing of it is published."""

    reason: str
    id: int | str | None = None
    line: int | None = None


@dataclass
class PollResult:
    """`read` = published + duplicates + ignored + len(dead_letters)."""

    read: int = 0  # rows (or export lines) handled for the first time
    published: int = 0  # messages the broker acknowledged
    duplicates: int = 0  # events the ledger had seen (or twice in one batch)
    ignored: int = 0  # events e-Backpack does not use (only files hold them: SQL filters the rest)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    rescanned: int = 0  # rows of the re-scan window handled in an earlier poll, skipped
    open_gaps: int = 0  # ids still awaited after this poll

    @property
    def malformed(self) -> int:
        return len(self.dead_letters)

    def add(self, other: PollResult) -> None:
        self.read += other.read
        self.published += other.published
        self.duplicates += other.duplicates
        self.ignored += other.ignored
        self.dead_letters += other.dead_letters
        self.rescanned += other.rescanned
        self.open_gaps = other.open_gaps


# --- the re-scan window --------------------------------------------------------------------------------

Gap = tuple[int, int, float]  # first id, last id (inclusive), poller time first seen missing


@dataclass
class WindowState:
    """The poller's checkpoint `state` (JSON); `position` of the checkpoint row is `high`."""

    low: int = 0
    high: int = 0
    gaps: list[Gap] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": STATE_VERSION,
                "low": self.low,
                "high": self.high,
                "gaps": [list(g) for g in self.gaps],
                "seen": sorted(self.seen),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str) -> WindowState:
        data = json.loads(raw or "{}")
        return cls(
            low=int(data.get("low", 0)),
            high=int(data.get("high", 0)),
            gaps=[(int(a), int(b), float(t)) for a, b, t in data.get("gaps", [])],
            seen={int(i) for i in data.get("seen", [])},
        )

    @property
    def open_ids(self) -> int:
        return sum(b - a + 1 for a, b, _t in self.gaps)

    def settle(self, upto: int) -> None:
        """Everything <= `upto` is read: move `low` there, or to just below the oldest open gap."""
        low = min(upto, self.gaps[0][0] - 1) if self.gaps else upto
        if low > self.low:
            self.low = low
            self.seen = {i for i in self.seen if i > low}

    def expire(self, now: float, seconds: float) -> list[Gap]:
        """Close gaps older than `seconds`: their transactions rolled back (or outlasted the window)."""
        closed = [g for g in self.gaps if g[2] <= now - seconds]
        self.gaps = [g for g in self.gaps if g[2] > now - seconds]
        return closed


def missing_ranges(present: Iterable[int], after: int, until: int) -> Iterator[tuple[int, int]]:
    """The ids of (after, until] not in `present` (ascending ids within that range), as ranges."""
    expected = after + 1
    for i in present:
        if i > expected:
            yield expected, i - 1
        expected = i + 1
    if expected <= until:
        yield expected, until


def track_gaps(
    old: Sequence[Gap], old_high: int, missing: Iterable[tuple[int, int]], now: float
) -> list[Gap]:
    """Gaps after a listing: missing ids that were open gaps keep their age, missing ids above `old_high`
    are new; missing ids outside both were settled before (closed gaps) and stay settled."""
    out: list[Gap] = []
    j = 0
    for a, b in missing:
        if a <= old_high:
            hi = min(b, old_high)
            while j < len(old) and old[j][1] < a:
                j += 1
            k = j
            while k < len(old) and old[k][0] <= hi:
                lo, up = max(a, old[k][0]), min(hi, old[k][1])
                if lo <= up:
                    out.append((lo, up, old[k][2]))
                k += 1
        if b > old_high:
            out.append((max(a, old_high + 1), b, now))
    return out


# --- the poller ----------------------------------------------------------------------------------------


class LogStorePoller:
    """Polls the Moodle log store into `moodle.events`; also the history backfill and file import.

    `sessions` is our database (ledger and checkpoints); the Moodle database comes from
    `settings.moodle_db_url` (or `reader`), only for `poll_once`, `run` and `backfill`.
    """

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        publisher: Publisher,
        *,
        reader: LogStoreReader | None = None,
        preparer: EventPreparer | None = None,
        checkpoint: str = CHECKPOINT,
        from_start: bool = False,
        batch_size: int = BATCH,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.site = settings.site_id
        self.sessions = sessions
        self.publisher = publisher
        self.ledger = PublishedEvents(sessions)
        self.preparer = preparer
        self.checkpoint = checkpoint
        self.from_start = from_start
        self.batch_size = batch_size
        self.clock = clock
        self.sleep = sleep
        self._reader = reader

    @property
    def reader(self) -> LogStoreReader:
        if self._reader is None:
            if not self.settings.moodle_db_url:
                raise RuntimeError("no Moodle database configured (EBACKPACK_MOODLE_DB_URL)")
            self._reader = LogStoreReader(
                moodle_engine(self.settings.moodle_db_url), self.settings.moodle_db_prefix
            )
        return self._reader

    # -- checkpoints (our database) --

    def load_checkpoint(self, name: str) -> tuple[int, str] | None:
        with self.sessions() as session:
            row = session.get(GatewayCheckpointRow, name)
            return None if row is None else (row.position, row.state)

    def save_checkpoint(self, name: str, position: int, state: str) -> None:
        with self.sessions.begin() as session:
            session.merge(
                GatewayCheckpointRow(name=name, position=position, state=state, updated_at=datetime.now(UTC))
            )

    def window_state(self) -> WindowState | None:
        saved = self.load_checkpoint(self.checkpoint)
        return None if saved is None else WindowState.from_json(saved[1])

    def _save_window(self, state: WindowState) -> None:
        self.save_checkpoint(self.checkpoint, state.high, state.to_json())

    # -- parse, de-duplicate, publish, record --

    def _publish_rows(self, rows: Sequence[tuple[int | None, Row]], source: str, result: PollResult) -> None:
        """(line or None, row) -> the ledger's unseen events, published and recorded, in row order."""
        events: list[MoodleEvent] = []
        for line, row in rows:
            result.read += 1
            if row.get("eventname") is not None and row["eventname"] not in USED:
                result.ignored += 1
                continue
            try:
                event = MoodleLogRow.model_validate(row)
            except (ValidationError, ValueError, TypeError) as exc:
                self._dead_letter(result, _reason(exc), row, line)
                continue
            wrong = problems(self.site, event)  # numbers no Moodle holds, text no message can carry
            if wrong:
                self._dead_letter(result, f"{wrong[0]['field']}: {wrong[0]['message']}", row, line)
                continue
            events.append(event)
        if not events:
            return
        if self.preparer is not None:
            events = self.preparer.prepare(events)
        candidates = [moodle_message(self.site, event) for event in events]
        todo = plan(candidates, 0, self.ledger.unseen(event_id for event_id, _m in candidates))
        result.duplicates += todo.duplicates  # seen by the ledger, or a second copy in this batch
        if todo.messages:
            self.publisher.publish(todo.messages)  # waits for the acks; raises if the broker did not ack
            self.ledger.record(self.site, source, todo.ids)
            result.published += len(todo.messages)

    @staticmethod
    def _dead_letter(result: PollResult, reason: str, row: Row, line: int | None) -> None:
        letter = DeadLetter(reason, row.get("id"), line)
        where = f"line {line}" if line is not None else f"id {row.get('id')}"
        log.warning("log-store row %s is malformed, not published: %s", where, letter.reason)
        result.dead_letters.append(letter)

    # -- the poll --

    def poll_once(self) -> PollResult:
        result = PollResult()
        reader = self.reader
        now = self.clock()
        newest = reader.newest_id()
        state = self.window_state()
        if state is None:  # first start
            start = 0 if self.from_start else newest
            state = WindowState(low=start, high=start)
            self._save_window(state)
        if newest < state.high:
            log.warning(
                "log store: newest id %d is below the checkpoint's %d (table restored or "
                "truncated?); waiting for new rows above it",
                newest,
                state.high,
            )
            newest = state.high
        state.gaps = self._find_gaps(state, newest, now)
        state.high = newest
        for batch in reader.window(state.low, newest, self.batch_size):
            fresh = [r for r in batch if int(r["id"]) not in state.seen]
            result.rescanned += len(batch) - len(fresh)
            self._publish_rows([(None, r) for r in fresh], SOURCE_POLLER, result)
            state.seen.update(int(r["id"]) for r in fresh)
            if len(batch) == self.batch_size:  # more to come: what is below the last id is read
                state.settle(int(batch[-1]["id"]))
                self._save_window(state)
        for first, last, since in state.expire(now, self.settings.poll_rescan_seconds):
            log.info(
                "log store: ids %d..%d never committed within %d s (rolled back): closed",
                first,
                last,
                now - since,
            )
        state.settle(newest)
        self._save_window(state)
        result.open_gaps = state.open_ids
        if result.read or result.dead_letters:
            log.info(
                "log store poll: %d read, %d published, %d duplicates, %d malformed, %d ids awaited",
                result.read,
                result.published,
                result.duplicates,
                result.malformed,
                result.open_gaps,
            )
        return result

    def _find_gaps(self, state: WindowState, newest: int, now: float) -> list[Gap]:
        reader = self.reader
        if not state.gaps:
            if reader.count_ids(state.high, newest) == newest - state.high:
                return []
            start = state.high
        else:
            start = state.gaps[0][0] - 1
        missing = missing_ranges(self._ids(start, newest), start, newest)
        return track_gaps(state.gaps, state.high, missing, now)

    def _ids(self, after: int, until: int) -> Iterator[int]:
        while True:
            chunk = self.reader.ids(after, until, ID_CHUNK)
            yield from chunk
            if len(chunk) < ID_CHUNK:
                return
            after = chunk[-1]

    def run(self, stop: threading.Event | None = None) -> None:
        """Poll every `poll_interval` seconds until `stop` is set; a failed poll is retried (the
        checkpoint only moves after the broker's acks, so nothing is lost)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("log store poll failed; trying again in %g s", self.settings.poll_interval)
            stop.wait(self.settings.poll_interval)

    # -- history from the database --

    def backfill(
        self,
        since: datetime,
        rate_limit_rows_per_s: float | None = None,
        progress: Progress | None = None,
        *,
        checkpoint: str | None = None,
    ) -> PollResult:
        """The used events triggered since `since`, in id order, up to the newest id at the first call.

        Resumable: its own checkpoint (`backfill:<since>` unless named) holds the range and how far it
        got; calling again after a crash or Ctrl-C continues, after the end it does nothing.
        `rate_limit_rows_per_s` caps the log rows (of every event) the queries go through per second,
        by sleeping between batches: a query scans at most that many ids. `progress(done, total)` counts
        log rows of the range, `total` from one `COUNT(*)` over its id range.
        """
        name = checkpoint or f"backfill:{since.astimezone(UTC).isoformat()}"
        ts = int(since.timestamp())
        reader = self.reader
        saved = self.load_checkpoint(name)
        if saved is not None:
            plan = json.loads(saved[1])
        else:
            until = reader.newest_id()
            first = reader.first_id_since(ts)
            begin = until if first is None else min(first - 1, until)
            plan = {
                "since": ts,
                "begin": begin,
                "after": begin,
                "until": until,
                "total": reader.count_ids(begin, until),
            }
            self.save_checkpoint(name, begin, json.dumps(plan))
        begin, until, total = int(plan["begin"]), int(plan["until"]), int(plan["total"])
        after = int(plan["after"])
        span = max(until - begin, 1)
        step = self.batch_size * 10 if not rate_limit_rows_per_s else max(1, int(rate_limit_rows_per_s))
        result = PollResult()
        started, scanned = time.monotonic(), 0
        while after < until:
            end = min(after + step, until)
            batch = reader.rows(after, end, self.batch_size, since=ts)
            if len(batch) == self.batch_size:
                end = int(batch[-1]["id"])  # the window holds more: continue after the last one read
            self._publish_rows([(None, r) for r in batch], SOURCE_POLLER, result)
            scanned += end - after
            after = end
            plan["after"] = after
            self.save_checkpoint(name, after, json.dumps(plan))
            if progress:
                progress(round(total * (after - begin) / span), total)
            if rate_limit_rows_per_s:
                ahead = started + scanned / rate_limit_rows_per_s - time.monotonic()
                if ahead > 0 and after < until:
                    self.sleep(ahead)
        return result

    # -- history from a file --

    def import_file(
        self,
        path: str | Path,
        format: Literal["csv", "jsonl"] | None = None,
        progress: Progress | None = None,
    ) -> PollResult:
        """An export of the log table: CSV with a header row of the table's columns (a database export:
        NULL as empty, `\\N` or `NULL`) or JSONL (one row object per line). Lines that are not a row are
        dead letters with their line number. Re-importing publishes nothing again (the ledger)."""
        path = Path(path)
        kind = format or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv")
        if kind not in ("csv", "jsonl"):
            raise ValueError(f"format must be csv or jsonl, not {kind!r}")
        total = _count_lines(path) - (1 if kind == "csv" else 0)
        records = _csv_records(path) if kind == "csv" else _jsonl_records(path)
        result = PollResult()
        batch: list[tuple[int | None, Row]] = []
        done = 0
        for line, record in records:
            done += 1
            if isinstance(record, DeadLetter):
                result.read += 1
                result.dead_letters.append(record)
                log.warning("%s line %d: %s", path.name, line, record.reason)
                continue
            batch.append((line, record))
            if len(batch) >= self.batch_size:
                self._publish_rows(batch, SOURCE_IMPORT, result)
                batch = []
                if progress:
                    progress(done, max(total, done))
        self._publish_rows(batch, SOURCE_IMPORT, result)
        if progress:
            progress(done, done)
        return result


# --- export files --------------------------------------------------------------------------------------

REPORT_COLUMNS = {"time", "user full name", "event name", "description"}


def _csv_records(path: Path) -> Iterator[tuple[int, Row | DeadLetter]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            return
        if "id" not in header or "eventname" not in header:
            if set(header) >= REPORT_COLUMNS:
                raise ValueError(
                    f"{path.name} is the log report's download (names and descriptions, no "
                    "ids): export the table mdl_logstore_standard_log itself instead"
                )
            raise ValueError(f"{path.name}: the header row has no id and eventname columns: {header[:8]}")
        line = reader.line_num + 1
        for values in reader:
            start, line = line, reader.line_num + 1
            if not values or values == [""]:
                continue
            if len(values) != len(header):
                yield start, DeadLetter(f"{len(values)} fields, the header has {len(header)}", None, start)
                continue
            yield start, {name: _csv_value(name, value) for name, value in zip(header, values, strict=True)}


def _csv_value(name: str, value: str) -> Any:
    if value in ("\\N", "NULL") or (value == "" and (name in NULLABLE or name in INTEGER_COLUMNS)):
        return None
    return value


def _jsonl_records(path: Path) -> Iterator[tuple[int, Row | DeadLetter]]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                yield number, DeadLetter(f"not JSON: {exc}", None, number)
                continue
            if not isinstance(record, dict):
                yield number, DeadLetter(f"not a row object but {type(record).__name__}", None, number)
                continue
            yield number, record


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "row"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"{where}: {first['msg']}{more}"
    return f"{type(exc).__name__}: {exc}"
