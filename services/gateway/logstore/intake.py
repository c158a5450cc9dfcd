"""One batch of log rows (from Moodle's table, an export file or a dead-letter replay): parse each row
(`MoodleLogRow`: PHP-serialized or JSON `other`, numbers as strings), build the messages
(`moodle_message`, the webhook's id scheme), drop the events the ledger (`gateway_events`) has seen,
publish and wait for the broker's acks, record the ledger; then the rows that are no event go to the
dead-letter topic (`dead_letters.py`), acknowledged too. Only after `take` returns may a caller move its
checkpoint: a failure in between re-publishes at worst (the ledger absorbs it); nothing is lost."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import ValidationError

from schemas.moodle import MoodleEvent, MoodleLogRow
from services.gateway.events import USED, Message, PublishedEvents, moodle_message, plan, problems
from services.gateway.logstore.reader import Row

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """`MoodleEventPublisher`: returns once the broker acknowledged every message."""

    def publish(self, messages: list[Message]) -> object: ...


class EventPreparer(Protocol):
    """`ProfileSync`: publishes the profiles a batch needs, adds completion dates."""

    def prepare(self, events: Sequence[MoodleEvent]) -> list[MoodleEvent]: ...


@dataclass(frozen=True)
class Origin:
    """Where a row came from: Moodle's table (its id), a line of an export, or a replayed record."""

    id: int | str | None = None
    line: int | None = None
    file: str | None = None
    replayed: tuple[str, int, int] | None = None  # topic, partition, offset of a replayed row

    @property
    def subject(self) -> str:
        """Which row: `<topic>/<partition>/<offset>`, `<file>/line/<n>` or `logstore_standard_log/<id>`."""
        if self.replayed is not None:
            return "{}/{}/{}".format(*self.replayed)
        if self.line is not None:
            return f"{self.file or 'export'}/line/{self.line}"
        return f"logstore_standard_log/{self.id}"


@dataclass(frozen=True)
class Incoming:
    """A row to take, or (`row` None) a line or record that is no row at all, with `problem` saying why."""

    origin: Origin
    row: Row | None
    problem: str | None = None
    raw: bytes | None = None  # the line or record as it was, when it is no row

    @property
    def original(self) -> bytes:
        """What its dead letter keeps and a replay sends back: the row as a JSON object, or the raw line."""
        if self.row is None:
            return self.raw or b""
        return json.dumps(self.row, default=str).encode()


@dataclass
class MalformedRow:
    """A row (or a line of an export) that cannot become an event; its dead letter is on the broker."""

    reason: str
    id: int | str | None = None
    line: int | None = None
    error_type: str = "MalformedLogRow"


@dataclass
class PollResult:
    """`read` = published + duplicates + ignored + len(dead_letters)."""

    read: int = 0  # rows (or export lines) handled for the first time
    published: int = 0  # messages the broker acknowledged
    duplicates: int = 0  # events the ledger had seen (or twice in one batch)
    ignored: int = 0  # events e-Backpack does not use (only files hold them: SQL filters the rest)
    dead_letters: list[MalformedRow] = field(default_factory=list)
    rescanned: int = 0  # rows of the re-scan window handled in an earlier poll, skipped
    open_gaps: int = 0  # ids still awaited after this poll
    replayed: int = 0  # rows a dead-letter replay sent back, taken again (counted in `read` too)

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
        self.replayed += other.replayed
        self.open_gaps = other.open_gaps


class DeadLetterSink(Protocol):
    """`DeadLetterPublisher`: returns once the broker acknowledged the dead letter of every row."""

    def send(self, rows: Sequence[tuple[Incoming, MalformedRow]]) -> object: ...


@dataclass(eq=False)  # one intake is one publisher's: compared by identity, as before
class RowIntake:
    """Turns batches of rows into acknowledged `moodle.events` messages and dead letters."""

    site: str
    publisher: Publisher
    ledger: PublishedEvents
    dead_letters: DeadLetterSink
    preparer: EventPreparer | None = None

    def take(self, rows: Sequence[Incoming], source: str, result: PollResult) -> None:
        """The batch's unseen events published and recorded (in row order), then its dead letters."""
        events: list[MoodleEvent] = []
        malformed: list[tuple[Incoming, MalformedRow]] = []
        for incoming in rows:
            result.read += 1
            outcome = self._parse(incoming)
            if isinstance(outcome, MalformedRow):
                malformed.append((incoming, outcome))
            elif outcome is None:
                result.ignored += 1
            else:
                events.append(outcome)
        self._publish(events, source, result)
        self._dead_letter(malformed, result)

    def _parse(self, incoming: Incoming) -> MoodleEvent | MalformedRow | None:
        """The event; None for an event e-Backpack does not use; why not, for a row that is no event."""
        row, origin = incoming.row, incoming.origin
        if row is None:
            return MalformedRow(incoming.problem or "not a log row", origin.id, origin.line)
        if row.get("eventname") is not None and row["eventname"] not in USED:
            return None
        try:
            event = MoodleLogRow.model_validate(row)
        except (ValidationError, ValueError, TypeError) as exc:
            return MalformedRow(_reason(exc), origin.id, origin.line, type(exc).__name__)
        wrong = problems(self.site, event)  # numbers no Moodle holds, text no message can carry
        if wrong:
            return MalformedRow(f"{wrong[0]['field']}: {wrong[0]['message']}", origin.id, origin.line)
        return event

    def _publish(self, events: list[MoodleEvent], source: str, result: PollResult) -> None:
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

    def _dead_letter(self, malformed: list[tuple[Incoming, MalformedRow]], result: PollResult) -> None:
        if not malformed:
            return
        for incoming, letter in malformed:
            log.warning(
                "log-store row %s is malformed, dead-lettered: %s", incoming.origin.subject, letter.reason
            )
        self.dead_letters.send(malformed)  # waits for the acks; raises if the broker did not ack
        result.dead_letters += [letter for _incoming, letter in malformed]


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "row"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"{where}: {first['msg']}{more}"
    return f"{type(exc).__name__}: {exc}"
