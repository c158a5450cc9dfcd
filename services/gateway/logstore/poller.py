"""The gateway's log-store poller: Moodle's `mdl_logstore_standard_log` polled into `moodle.events`
every `poll_interval` seconds, with its checkpoint; also the entry point of the history backfill
(`backfill.py`) and the import of an export (`export_files.py`).

Every path takes its rows in batches through `RowIntake` (`intake.py`: parse, de-duplicate, publish,
dead-letter, all acknowledged) and only then saves its checkpoint (`gateway_checkpoints`, our database).
A crash between any two steps re-publishes at worst (the ledger and the issuer's idempotent awards absorb
it); nothing is lost. A row that does not parse is a dead letter on `moodle.logstore.dlq`
(`dead_letters.py`), not fatal; a replay of it comes back on `moodle.logstore`, which each poll (and
each import) reads first (`replays.py`). Which ids a poll reads: `window.py` (rows that commit out of
id order).

A new poller (no checkpoint) starts at the newest row by default: the history is `backfill`'s (`history()`) or
`import_file`'s job, rate-limited. `from_start=True` starts at id 0. Given a `history_publisher` (the CLI
gives `MoodleEventPublisher(backfill=True)`), the history and the import's rows go there, to
`moodle.events.backfill`: the issuer's second lane, which it takes only while the live one has nothing
waiting, so a backfill of 100,000 completions never queues the live ones behind it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from ebackpack.config import Settings
from services.gateway.events import LARGEST, PublishedEvents
from services.gateway.logstore.backfill import Backfill, Progress
from services.gateway.logstore.checkpoints import Checkpoints
from services.gateway.logstore.dead_letters import DeadLetterPublisher
from services.gateway.logstore.export_files import count_lines, export_format, export_rows
from services.gateway.logstore.intake import (
    DeadLetterSink,
    EventPreparer,
    Incoming,
    Origin,
    PollResult,
    Publisher,
    RowIntake,
)
from services.gateway.logstore.reader import BATCH, LogStoreReader, Row, moodle_engine
from services.gateway.logstore.replays import ReplayedRows, incoming
from services.gateway.logstore.window import Gap, WindowState, missing_ranges, track_gaps

log = logging.getLogger(__name__)

SOURCE_POLLER = "poller"  # in the ledger
SOURCE_IMPORT = "import"
SOURCE_REPLAY = "replay"
CHECKPOINT = "logstore-poller"


class LogStorePoller:
    """Polls the Moodle log store into `moodle.events`; also the history backfill and file import.

    `sessions` is our database (ledger and checkpoints); the Moodle database comes from
    `settings.moodle_db_url` (or `reader`), only for `poll_once`, `run` and `history`. Dead letters go
    to the broker of `settings` unless `dead_letters` is given; replayed rows come from there too.
    """

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        publisher: Publisher,
        *,
        history_publisher: Publisher | None = None,
        reader: LogStoreReader | None = None,
        preparer: EventPreparer | None = None,
        dead_letters: DeadLetterSink | None = None,
        replays: ReplayedRows | None = None,
        checkpoint: str = CHECKPOINT,
        from_start: bool = False,
        batch_size: int = BATCH,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.checkpoints = Checkpoints(sessions)
        ledger = PublishedEvents(sessions)
        self._own_dead_letters: DeadLetterPublisher | None = None  # built here, so closed here
        if dead_letters is None:
            dead_letters = self._own_dead_letters = DeadLetterPublisher(settings, ledger)
        self.intake = RowIntake(settings.site_id, publisher, ledger, dead_letters, preparer)
        self.history_intake = (  # the backfill's and import's: the same ledger, their own lane
            self.intake
            if history_publisher is None
            else RowIntake(settings.site_id, history_publisher, ledger, dead_letters, preparer)
        )
        self.replays = replays or ReplayedRows(settings)
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
            engine = moodle_engine(self.settings.moodle_db_url)
            self._reader = LogStoreReader(engine, self.settings.moodle_db_prefix)
        return self._reader

    def close(self) -> None:
        """The dead-letter producer, if this poller built it (not the publisher it was given)."""
        if self._own_dead_letters is not None:
            self._own_dead_letters.close()

    # -- checkpoints (our database) --

    def load_checkpoint(self, name: str) -> tuple[int, str] | None:
        return self.checkpoints.load(name)

    def save_checkpoint(self, name: str, position: int, state: str) -> None:
        self.checkpoints.save(name, position, state)

    def window_state(self) -> WindowState | None:
        saved = self.checkpoints.load(self.checkpoint)
        return None if saved is None else WindowState.from_json(saved[1])

    def _save_window(self, state: WindowState) -> None:
        self.checkpoints.save(self.checkpoint, state.high, state.to_json())

    # -- the poll --

    def poll_once(self) -> PollResult:
        """The rows a replay sent back, then the window's rows of Moodle's table not handled yet."""
        result = PollResult()
        self.take_replayed(result)
        now = self.clock()
        newest = self.reader.newest_id()
        state = self._start_state(newest)
        newest = max(newest, state.high)
        state.gaps = self._find_gaps(state, newest, now)
        state.high = newest
        self._read_window(state, newest, result)
        self._close_old_gaps(state, now)
        state.settle(newest)
        self._save_window(state)
        result.open_gaps = state.open_ids
        self._log(result)
        return result

    def take_replayed(self, result: PollResult) -> None:
        """The rows `ebackpack deadletters replay` sent back to `moodle.logstore`, taken again."""
        with self.replays.drain() as replayed:
            for records in replayed.batches(self.batch_size):
                rows = [self._as_stored_now(incoming(r)) for r in records]
                self.intake.take(rows, SOURCE_REPLAY, result)
                replayed.commit(records)
                result.replayed += len(records)

    def _as_stored_now(self, replayed: Incoming) -> Incoming:
        """Moodle's table is the source: a replayed row is read again from it (a row repaired there is
        taken as repaired); a row it no longer holds, or without a Moodle database, as the dead letter
        kept it."""
        row_id = replayed.row.get("id") if replayed.row is not None else None
        if not self.settings.moodle_db_url and self._reader is None:
            return replayed
        try:
            number = int(row_id) if row_id is not None else 0
        except (TypeError, ValueError):  # an id that is no number: no row of the table
            return replayed
        current = self.reader.row(number) if 0 < number <= LARGEST else None
        return replayed if current is None else Incoming(replayed.origin, current)

    def _start_state(self, newest: int) -> WindowState:
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
        return state

    def _find_gaps(self, state: WindowState, newest: int, now: float) -> list[Gap]:
        """The open gaps after this poll's listing; no listing while the ids since `high` are complete."""
        if not state.gaps:
            if self.reader.count_ids(state.high, newest) == newest - state.high:
                return []
            start = state.high
        else:
            start = state.gaps[0][0] - 1
        missing = missing_ranges(self.reader.all_ids(start, newest), start, newest)
        return track_gaps(state.gaps, state.high, missing, now)

    def _read_window(self, state: WindowState, newest: int, result: PollResult) -> None:
        for batch in self.reader.window(state.low, newest, self.batch_size):
            fresh = [r for r in batch if int(r["id"]) not in state.seen]
            result.rescanned += len(batch) - len(fresh)
            self.intake.take(_from_table(fresh), SOURCE_POLLER, result)
            state.seen.update(int(r["id"]) for r in fresh)
            if len(batch) == self.batch_size:  # more to come: what is below the last id is read
                state.settle(int(batch[-1]["id"]))
                self._save_window(state)

    def _close_old_gaps(self, state: WindowState, now: float) -> None:
        for first, last, since in state.expire(now, self.settings.poll_rescan_seconds):
            log.info(
                "log store: ids %d..%d never committed within %d s (rolled back): closed",
                first,
                last,
                now - since,
            )

    @staticmethod
    def _log(result: PollResult) -> None:
        if result.read or result.dead_letters:
            log.info(
                "log store poll: %d read, %d published, %d duplicates, %d malformed, %d ids awaited",
                result.read,
                result.published,
                result.duplicates,
                result.malformed,
                result.open_gaps,
            )

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

    # -- history --

    def history(self) -> Backfill:
        """The backfill of the used events triggered since a date (`history().run(since, ...)`), on this
        poller's Moodle database, checkpoints and intake."""
        return Backfill(self.reader, self.checkpoints, self.history_intake, self.batch_size, self.sleep)

    def import_file(
        self,
        path: str | Path,
        format: Literal["csv", "jsonl"] | None = None,
        progress: Progress | None = None,
    ) -> PollResult:
        """An export of the log table (`export_files.py`): CSV or JSONL. Lines that are not a row are
        dead letters with their line number. Re-importing publishes nothing again (the ledger)."""
        path = Path(path)
        kind = export_format(path, format)
        total = count_lines(path) - (1 if kind == "csv" else 0)
        result = PollResult()
        self.take_replayed(result)  # a site without database access replays its dead letters this way
        batch: list[Incoming] = []
        done = 0
        for row in export_rows(path, kind):
            done += 1
            batch.append(row)
            if len(batch) >= self.batch_size:
                self.history_intake.take(batch, SOURCE_IMPORT, result)
                batch = []
                if progress:
                    progress(done, max(total, done))
        self.history_intake.take(batch, SOURCE_IMPORT, result)
        if progress:
            progress(done, done)
        return result


def _from_table(rows: list[Row]) -> list[Incoming]:
    return [Incoming(Origin(id=row["id"]), row) for row in rows]
