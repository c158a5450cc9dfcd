"""The history of Moodle's log table since a date, in id order, rate-limited and resumable."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from services.gateway.logstore.checkpoints import Checkpoints
from services.gateway.logstore.intake import Incoming, Origin, PollResult, RowIntake
from services.gateway.logstore.reader import LogStoreReader

SOURCE = "poller"  # in the ledger: the backfill reads the same table as the poller
Progress = Callable[[int, int], None]  # (done, total estimate)


@dataclass
class BackfillPlan:
    """The checkpoint's state: the id range (begin, until] of the history and how far it got."""

    since: int
    begin: int
    after: int
    until: int
    total: int  # log rows of the range (every event), for the progress

    @classmethod
    def first(cls, reader: LogStoreReader, since: int) -> BackfillPlan:
        """Up to the newest id now, from just below the first row triggered at or after `since`."""
        until = reader.newest_id()
        first = reader.first_id_since(since)
        begin = until if first is None else min(first - 1, until)
        return cls(since, begin, begin, until, reader.count_ids(begin, until))

    @classmethod
    def from_json(cls, raw: str) -> BackfillPlan:
        data = json.loads(raw)
        return cls(*(int(data[name]) for name in ("since", "begin", "after", "until", "total")))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def done_estimate(self) -> int:
        return round(self.total * (self.after - self.begin) / max(self.until - self.begin, 1))


@dataclass
class Backfill:
    reader: LogStoreReader
    checkpoints: Checkpoints
    intake: RowIntake
    batch_size: int
    sleep: Callable[[float], None]

    def run(
        self,
        since: datetime,
        rate_limit_rows_per_s: float | None = None,
        progress: Progress | None = None,
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
        plan = self._plan(name, int(since.timestamp()))
        step = self.batch_size * 10 if not rate_limit_rows_per_s else max(1, int(rate_limit_rows_per_s))
        result = PollResult()
        started, scanned = time.monotonic(), 0
        while plan.after < plan.until:
            scanned += self._next_batch(plan, step, result)
            self.checkpoints.save(name, plan.after, plan.to_json())
            if progress:
                progress(plan.done_estimate(), plan.total)
            if rate_limit_rows_per_s and plan.after < plan.until:
                ahead = started + scanned / rate_limit_rows_per_s - time.monotonic()
                if ahead > 0:
                    self.sleep(ahead)
        return result

    def _plan(self, name: str, since: int) -> BackfillPlan:
        saved = self.checkpoints.load(name)
        if saved is not None:
            return BackfillPlan.from_json(saved[1])
        plan = BackfillPlan.first(self.reader, since)
        self.checkpoints.save(name, plan.begin, plan.to_json())
        return plan

    def _next_batch(self, plan: BackfillPlan, step: int, result: PollResult) -> int:
        """Takes the used rows of the next `step` ids (fewer when they hold a whole batch); returns the
        ids scanned, and moves `plan.after` past them."""
        end = min(plan.after + step, plan.until)
        batch = self.reader.rows(plan.after, end, self.batch_size, since=plan.since)
        if len(batch) == self.batch_size:
            end = int(batch[-1]["id"])  # the window holds more: continue after the last one read
        self.intake.take([Incoming(Origin(id=row.get("id")), row) for row in batch], SOURCE, result)
        scanned, plan.after = end - plan.after, end
        return scanned
