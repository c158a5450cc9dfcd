"""Malformed log rows as dead letters on the broker, like every consumer's: the `DeadLetterMessage` of
`schemas`, on `moodle.logstore.dlq`, so `ebackpack deadletters list / inspect / replay` show and replay
them.

What a dead letter keeps: the row as a JSON object (or, for a line of an export that is no row, the line
itself: the text of a JSONL line, the fields of a CSV line as a JSON array), keyed by the row's id, with
`topic` = `moodle.logstore` and no source offset (-1: a row of Moodle's table or a file line has none;
the `subject` says which row or line it was). A replay sends the row to `moodle.logstore`, where the
next poll takes it again (`replays.py`): an event on `moodle.events` if it parses now, else a new dead
letter.

Nothing is lost while the broker is down: the dead letters of a batch are published, and acknowledged,
before the caller moves its checkpoint (the poller's window, the backfill's position; an import stops
and is run again), so the rows are read and dead-lettered again once it is back. Each is sent once: its
id is deterministic (origin and content) and recorded in the ledger (`gateway_events`, source
"dead-letter") after the broker's ack, as the events are.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Sequence

from ebackpack.config import Settings
from ebackpack.streaming.topics import LOGSTORE_ROWS, dlq
from schemas import DeadLetter, DeadLetterMessage, deterministic_id
from services.gateway.events import PublishedEvents
from services.gateway.logstore.intake import Incoming, MalformedRow
from services.gateway.publisher import BATCH_TIMEOUT, ProducerSlot, Record, publish_acked

CONSUMER = "gateway-logstore"  # the consumer named in its dead letters, and the group reading replays
SOURCE_DEAD_LETTER = "dead-letter"  # in the ledger
SOURCE = "ebackpack/gateway"  # the CloudEvent source of the dead letters


def consumer_name(settings: Settings) -> str:
    return settings.topic(CONSUMER)


def dead_letter_message(settings: Settings, incoming: Incoming, letter: MalformedRow) -> DeadLetterMessage:
    """The dead letter of one row: the reason and the row, to be replayed to `moodle.logstore`."""
    origin, value = incoming.origin, incoming.original
    consumer = consumer_name(settings)
    topic, partition, offset = origin.replayed or (settings.topic(LOGSTORE_ROWS), -1, -1)
    where = origin.subject
    key = None if origin.id is None else str(origin.id).encode()
    return DeadLetterMessage.build(
        id=deterministic_id("dead-letter", consumer, where, hashlib.sha256(value).hexdigest()),
        source=SOURCE,
        subject=where,
        data=DeadLetter(
            reason=letter.reason,
            error_type=letter.error_type,
            consumer=consumer,
            topic=topic,
            partition=partition,
            offset=offset,
            key_b64=None if key is None else base64.b64encode(key).decode(),
            value_b64=base64.b64encode(value).decode(),
        ),
    )


class DeadLetterPublisher:
    """Publishes the dead letters of malformed rows and waits for the broker's acks, each once."""

    def __init__(self, settings: Settings, ledger: PublishedEvents, timeout: float = BATCH_TIMEOUT) -> None:
        self.settings = settings
        self.topic = settings.topic(dlq(LOGSTORE_ROWS))
        self.ledger = ledger
        self.timeout = timeout
        self._slot = ProducerSlot(settings, "ebackpack-gateway-dead-letters", timeout)

    def send(self, rows: Sequence[tuple[Incoming, MalformedRow]]) -> int:
        """Every row's dead letter not sent before, acknowledged; returns how many were sent.
        Raises `BrokerUnavailable` when the broker did not acknowledge them in time."""
        letters: dict[str, tuple[Incoming, DeadLetterMessage]] = {}
        for incoming, letter in rows:
            message = dead_letter_message(self.settings, incoming, letter)
            letters.setdefault(message.id, (incoming, message))
        todo = self.ledger.unseen(letters)
        records: list[Record] = [
            (self.topic, _key(message), message.to_bytes())
            for event_id, (_incoming, message) in letters.items()
            if event_id in todo
        ]
        if records:
            publish_acked(self._slot, records, time.monotonic() + self.timeout)
            self.ledger.record(self.settings.site_id, SOURCE_DEAD_LETTER, todo)
        return len(records)

    def close(self) -> None:
        self._slot.close(timeout=10)


def _key(message: DeadLetterMessage) -> bytes | None:
    key_b64 = message.data.key_b64
    return None if key_b64 is None else base64.b64decode(key_b64)
