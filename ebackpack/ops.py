"""Operations: what the pipeline is doing (topics, consumer groups, lag, dead letters), and the dead-letter
tool (list, inspect, replay).

Read from the broker alone (kafka-python, blocking): works against a running system without its
database, from any machine that reaches the broker.

Broker quirks handled here (both found on the embedded broker, Tansu):
- The end offset it reports (ListOffsets) is wrong: the base offset of the partition's last record
  batch + 1 with `memory://` storage, and 1 whatever the log holds with `s3://` storage. The high
  watermark in its fetch responses is right. `Broker.exact_ends` fetches from the reported end - 1 and
  takes the high watermark of the answer; on Apache Kafka both agree and the read changes nothing.
- `offsets_for_times` works, but answers with batch base offsets (a "last minute" count can include
  the rest of a batch that began earlier), and with offset 0 / timestamp -1 instead of "none" when no
  record is that recent. A broker that refuses the request gets two end-offset samples
  `sample_seconds` apart instead (`Status.rate_method` says which).
- Committed offset metadata is not kept; `describe_groups` fails. Neither is used.

Dead-letter replay bookkeeping: the consumer group `<prefix>dlq-replay` commits, on each dead-letter
topic partition, its *replay position*: every dead letter below it has been replayed. `replay()` of all
dead letters replays from that position to the end and moves it there; `replay()` of chosen offsets
replays those at or above it and moves it over the run of replayed offsets that starts at it (a chosen
offset beyond a gap is replayed but not recorded: a later replay of all sends it again, which the
idempotent consumers absorb; replay in order to avoid that). `force=True` replays offsets below the
position again. The group's lag on a dead-letter topic is the number of dead letters not replayed yet,
so `status()` shows it like any consumer's. Republishing comes before the commit: a crash in between
replays those dead letters again next time (at least once, never lost).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError
from rich.console import Group
from rich.table import Table

from ebackpack.config import Settings
from ebackpack.streaming.topics import (
    ATTESTATION_UPLOADS,
    MOODLE_COURSES,
    MOODLE_EVENTS,
    MOODLE_USERS,
    RENDER_REQUESTS,
    TOPICS,
)
from schemas import DeadLetter, DeadLetterMessage

log = logging.getLogger(__name__)

REPLAY_GROUP = "dlq-replay"
REPLAY_HEADER = "ebackpack-replay-of"  # on a replayed message: "<dlq topic>/<partition>/<offset>"
DLQ_SUFFIX = ".dlq"
READ_TIMEOUT = 10.0  # seconds a read of known offsets may take before it gives up on the rest
FETCH_WAIT_MS = 100  # a fetch at a partition's end answers (empty, with the high watermark) after this


def replay_group(settings: Settings) -> str:
    return settings.topic(REPLAY_GROUP)


def dlq_topics() -> list[str]:
    return [t.name for t in TOPICS if t.name.endswith(DLQ_SUFFIX)]


def known_groups(settings: Settings) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Consumer group id -> (role, the topics it consumes; more show up from its committed offsets).

    The workers' group ids are their faust app ids: `make_app(name)` -> `settings.topic(name)`.
    """
    return {
        settings.topic(settings.issuer_group): ("issuer", (MOODLE_EVENTS, MOODLE_USERS, MOODLE_COURSES)),
        settings.topic("renderer"): ("renderer", (RENDER_REQUESTS,)),  # services/renderer/agent.py
        settings.topic("importer"): ("importer", (ATTESTATION_UPLOADS,)),  # services/importer/agent.py
        settings.topic(settings.notify_group): ("notifier", ()),
        replay_group(settings): ("dead-letter replay", tuple(dlq_topics())),
    }


# --- the broker --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Probe:
    """What a fetch at a position found: the high watermark and the first record there, if any."""

    highwater: int
    offset: int | None = None
    fingerprint: str | None = None


def fingerprint(record: ConsumerRecord) -> str:
    """Tells a record apart from another one written later at the same offset (a replaced log)."""
    digest = hashlib.sha256(record.key or b"")
    digest.update(b"\0" + (record.value or b""))
    return f"{record.timestamp}:{digest.hexdigest()[:32]}"


class Broker:
    """An admin client and a group-less consumer, for reading offsets and records (not thread-safe)."""

    def __init__(self, settings: Settings, timeout: float = 30.0) -> None:
        self.settings = settings
        bootstrap = settings.kafka_bootstrap.split(",")
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ebackpack-ops",
                                              request_timeout_ms=10_000)
                break
            except KafkaError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Kafka at {settings.kafka_bootstrap} is not reachable: {exc}") from exc
                time.sleep(0.5)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="ebackpack-ops",
                                      enable_auto_commit=False, request_timeout_ms=15_000,
                                      max_poll_records=2000, fetch_max_wait_ms=FETCH_WAIT_MS)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.consumer.close()
        with contextlib.suppress(Exception):
            self.admin.close()

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def partitions(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic) or ())]

    def offsets(self, tps: Collection[TopicPartition], exact: bool = True,
                ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """(first offset, end offset) of each partition."""
        if not tps:
            return {}, {}
        starts = dict(self.consumer.beginning_offsets(list(tps)))
        ends = dict(self.consumer.end_offsets(list(tps)))
        if exact:
            ends = self.exact_ends(ends)
        return starts, ends

    def exact_ends(self, ends: dict[TopicPartition, int], timeout: float = 5.0) -> dict[TopicPartition, int]:
        """End offsets from the high watermark of a fetch at each reported end - 1 (see above). A partition
        whose fetch does not answer in time keeps its reported end."""
        found = self.high_watermarks(ends, timeout)
        if len(found) < len(ends):
            log.warning("no high watermark of %s within %.0f s: reported end offsets kept",
                        sorted(str(tp) for tp in ends if tp not in found), timeout)
        return {**ends, **found}

    def high_watermarks(self, ends: dict[TopicPartition, int],
                        timeout: float = 5.0) -> dict[TopicPartition, int]:
        """The high watermark of each partition that answered a fetch (at its reported end - 1) in time."""
        probed = self.probe({tp: max(0, end - 1) for tp, end in ends.items()}, timeout)
        return {tp: found.highwater for tp, found in probed.items()}

    def probe(self, positions: dict[TopicPartition, int],
              timeout: float = 5.0) -> dict[TopicPartition, Probe]:
        """For each partition that answered in time: its high watermark and the first record at or after
        the position (offset and fingerprint), if the log has one there.

        A consumer of its own each time: a reused one may answer with the high watermark of a fetch it
        sent ahead before the last messages came (same offset, so the client takes it as current)."""
        if not positions:
            return {}
        found: dict[TopicPartition, Probe] = {}
        first: dict[TopicPartition, tuple[int, str]] = {}
        reader = KafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap.split(","),
                               client_id="ebackpack-ops", enable_auto_commit=False,
                               request_timeout_ms=15_000, fetch_max_wait_ms=FETCH_WAIT_MS)
        try:
            reader.assign(list(positions))
            for tp, offset in positions.items():
                reader.seek(tp, offset)
            deadline = time.monotonic() + timeout
            while len(found) < len(positions) and time.monotonic() < deadline:
                for tp, records in reader.poll(timeout_ms=200, max_records=500).items():
                    if records and tp not in first:
                        first[tp] = (records[0].offset, fingerprint(records[0]))
                        reader.pause(tp)
                for tp, offset in positions.items():
                    highwater = reader.highwater(tp)
                    if tp not in found and highwater is not None and (tp in first or highwater <= offset):
                        found[tp] = Probe(highwater, *first.get(tp, (None, None)))
        finally:
            reader.close(autocommit=False)
        return found

    def _caught_up(self, tp: TopicPartition) -> bool:
        highwater = self.consumer.highwater(tp)
        return highwater is not None and self.consumer.position(tp) >= highwater

    def offsets_since(self, tps: Collection[TopicPartition],
                      since_ms: int) -> dict[TopicPartition, int | None]:
        """The first offset at or after `since_ms` (unix ms) per partition; None = no record that recent."""
        if not tps:
            return {}
        found = self.consumer.offsets_for_times({tp: since_ms for tp in tps})
        result: dict[TopicPartition, int | None] = {}
        for tp in tps:
            hit = found.get(tp)
            # Kafka says "none" with None; Tansu with offset 0 and timestamp -1.
            result[tp] = None if hit is None or hit.offset < 0 or hit.timestamp < 0 else hit.offset
        return result

    def committed(self, group: str) -> dict[TopicPartition, int]:
        offsets = self.admin.list_group_offsets({group: None}).get(group, {})
        return {tp: meta.offset for tp, meta in offsets.items() if meta is not None and meta.offset >= 0}

    def groups(self) -> list[str]:
        try:
            return sorted(g["group_id"] for g in self.admin.list_groups())
        except (KafkaError, KeyError, TypeError, ValueError) as exc:
            log.warning("consumer groups not listed: %s", exc)
            return []

    def read(self, ranges: dict[TopicPartition, tuple[int, int]],
             timeout: float = READ_TIMEOUT) -> list[ConsumerRecord]:
        """The records of each partition in [start, end), in order."""
        todo = {tp: (start, end) for tp, (start, end) in ranges.items() if end > start}
        if not todo:
            return []
        records: list[ConsumerRecord] = []
        self.consumer.assign(list(todo))
        for tp, (start, _end) in todo.items():
            self.consumer.seek(tp, start)
        waiting = set(todo)
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            for tp, batch in self.consumer.poll(timeout_ms=200).items():
                start, end = todo[tp]
                records.extend(r for r in batch if start <= r.offset < end)
                if self.consumer.position(tp) >= end:
                    waiting.discard(tp)
            for tp in list(waiting):
                if self._caught_up(tp) and self.consumer.position(tp) < todo[tp][1]:
                    waiting.discard(tp)  # the rest is gone (retention, compaction)
        self.consumer.unsubscribe()
        if waiting:
            log.warning("read of %s stopped after %.0f s", sorted(map(str, waiting)), timeout)
        return sorted(records, key=lambda r: (r.topic, r.partition, r.offset))


def group_lag(broker: Broker, group: str, topics: Iterable[str],
              exact: bool = True) -> dict[tuple[str, int], int]:
    """(topic, partition) -> messages `group` has not committed yet. A partition the group never
    committed on counts from its first offset (the workers start at the earliest offset)."""
    tps = [tp for topic in dict.fromkeys(topics) for tp in broker.partitions(topic)]
    starts, ends = broker.offsets(tps, exact=exact)
    committed = broker.committed(group)
    return {(tp.topic, tp.partition): max(0, ends[tp] - committed.get(tp, starts[tp])) for tp in tps}


# --- status ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PartitionStatus:
    partition: int
    start: int
    end: int
    last_minute: int | None  # None: not known


@dataclass(frozen=True)
class TopicStatus:
    name: str  # as in TOPICS (no prefix)
    topic: str  # on the broker
    doc: str
    partitions: list[PartitionStatus]
    exists: bool = True

    @property
    def end(self) -> int:
        return sum(p.end for p in self.partitions)

    @property
    def messages(self) -> int:
        """Messages the topic holds now (retention and compaction drop old ones)."""
        return sum(p.end - p.start for p in self.partitions)

    @property
    def last_minute(self) -> int | None:
        counts = [p.last_minute for p in self.partitions]
        return None if any(c is None for c in counts) else sum(c or 0 for c in counts)

    @property
    def is_dead_letter_topic(self) -> bool:
        return self.name.endswith(DLQ_SUFFIX)


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    committed: int | None  # None: the group never committed on this partition
    end: int
    lag: int

    @property
    def beyond_end(self) -> bool:
        """Committed beyond the log end: the broker lost messages (`offset_guard` reads it again)."""
        return self.committed is not None and self.committed > self.end


@dataclass(frozen=True)
class GroupTopicLag:
    topic: str  # on the broker
    name: str  # as in TOPICS
    partitions: list[PartitionLag]

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def committed(self) -> int:
        return sum(p.committed or 0 for p in self.partitions)

    @property
    def end(self) -> int:
        return sum(p.end for p in self.partitions)

    @property
    def beyond_end(self) -> list[PartitionLag]:
        return [p for p in self.partitions if p.beyond_end]


@dataclass(frozen=True)
class GroupStatus:
    group: str
    role: str
    topics: list[GroupTopicLag]
    started: bool  # has committed anything

    @property
    def lag(self) -> int:
        return sum(t.lag for t in self.topics)

    def lag_of(self, name: str) -> int | None:
        """Lag on the topic called `name` in TOPICS, None if this group does not read it."""
        return next((t.lag for t in self.topics if t.name == name), None)

    @property
    def beyond_end(self) -> list[tuple[str, PartitionLag]]:
        """(topic, partition) where this group committed beyond the log end."""
        return [(t.topic, p) for t in self.topics for p in t.beyond_end]


@dataclass(frozen=True)
class DeadLetterCount:
    topic: str  # on the broker
    name: str
    total: int  # dead letters the topic holds
    not_replayed: int  # at or above the replay position


@dataclass(frozen=True)
class Status:
    taken_at: datetime
    bootstrap: str
    topics: list[TopicStatus]
    groups: list[GroupStatus]
    dead_letters: list[DeadLetterCount]
    rate_method: str
    notes: list[str] = field(default_factory=list)

    def topic(self, name: str) -> TopicStatus:
        return next(t for t in self.topics if t.name == name)

    def group(self, role_or_id: str) -> GroupStatus:
        return next(g for g in self.groups if role_or_id in (g.role, g.group))

    def dead_letter_count(self, name: str) -> DeadLetterCount:
        return next(d for d in self.dead_letters if name in (d.name, d.topic))


def status(settings: Settings, *, exact: bool = True, sample_seconds: float = 5.0) -> Status:
    """Topics (partitions, offsets, messages in the last minute), consumer groups (committed offsets,
    lag per topic) and dead letters (per dead-letter topic, and how many are not replayed)."""
    with Broker(settings) as broker:
        return _status(broker, settings, exact, sample_seconds)


def _status(broker: Broker, settings: Settings, exact: bool, sample_seconds: float) -> Status:
    taken_at = datetime.now(UTC)
    notes: list[str] = []
    parts = {spec.name: broker.partitions(settings.topic(spec.name)) for spec in TOPICS}
    all_tps = [tp for tps in parts.values() for tp in tps]
    starts, ends = broker.offsets(all_tps, exact=exact)

    since: dict[TopicPartition, int | None] | None = None
    rate_method = "offsets_for_times(now - 60 s)"
    try:
        since = broker.offsets_since(all_tps, int(taken_at.timestamp() * 1000) - 60_000)
    except (KafkaError, AssertionError, ValueError) as exc:
        log.info("offsets_for_times refused (%s): sampling end offsets instead", exc)
    if since is not None:
        last_minute: dict[TopicPartition, int | None] = {
            tp: 0 if since[tp] is None else max(0, ends[tp] - (since[tp] or 0)) for tp in all_tps}
    elif sample_seconds > 0:
        rate_method = f"two end-offset samples {sample_seconds:g} s apart, scaled to a minute"
        notes.append(f"The broker does not answer offsets_for_times: messages per minute estimated from "
                     f"two samples {sample_seconds:g} s apart.")
        time.sleep(sample_seconds)
        _, later = broker.offsets(all_tps, exact=exact)
        last_minute = {tp: round((later[tp] - ends[tp]) * 60 / sample_seconds) for tp in all_tps}
    else:
        rate_method = "not measured"
        last_minute = {tp: None for tp in all_tps}

    topics = [
        TopicStatus(spec.name, settings.topic(spec.name), spec.doc,
                    [PartitionStatus(tp.partition, starts[tp], ends[tp], last_minute[tp])
                     for tp in parts[spec.name]], exists=bool(parts[spec.name]))
        for spec in TOPICS
    ]
    missing = [t.topic for t in topics if not t.exists]
    if missing:
        notes.append(f"Topics not created yet: {', '.join(missing)} (`ebackpack prepare`).")

    by_topic = {settings.topic(spec.name): spec.name for spec in TOPICS}
    groups_ = known_groups(settings)
    extra = [g for g in broker.groups() if g not in groups_ and g.startswith(settings.topic_prefix)]
    groups: list[GroupStatus] = []
    for group, (role, expected) in [*groups_.items(), *((g, ("other", ())) for g in extra)]:
        committed = broker.committed(group)
        if role == "other" and not any(tp.topic in by_topic for tp in committed):
            continue  # a group of something else on this broker
        names = list(dict.fromkeys([*expected, *sorted(by_topic[tp.topic] for tp in committed
                                                       if tp.topic in by_topic)]))
        lags = []
        for name in names:
            tps = parts.get(name, [])
            lags.append(GroupTopicLag(settings.topic(name), name, [
                PartitionLag(tp.partition, committed.get(tp), ends[tp],
                             max(0, ends[tp] - committed.get(tp, starts[tp]))) for tp in tps]))
        groups.append(GroupStatus(group, role, lags, started=bool(committed)))

    for g in groups:
        for topic, p in g.beyond_end:
            notes.append(f"[red]Broker lost data:[/red] {g.group} ({g.role}) committed offset {p.committed} "
                         f"on {topic}/{p.partition}, but the log ends at {p.end}. Its running workers read "
                         "the partition again from its start within seconds (effects are idempotent); "
                         "the issuer sends again render requests whose PDF was never stored.")
    replay = next(g for g in groups if g.group == replay_group(settings))
    dead = [DeadLetterCount(t.topic, t.name, t.messages, replay.lag_of(t.name) or 0)
            for t in topics if t.is_dead_letter_topic]
    return Status(taken_at, settings.kafka_bootstrap, topics, groups, dead, rate_method, notes)


def render_status(state: Status) -> Group:
    """The status as rich tables (topics, consumer groups, dead letters) and notes."""
    topics = Table(title=f"Topics on {state.bootstrap} at {state.taken_at:%Y-%m-%d %H:%M:%S} UTC",
                   title_justify="left")
    for column, justify in (("topic", "left"), ("partitions", "right"), ("messages", "right"),
                            ("end offsets", "left"), ("last minute", "right")):
        topics.add_column(column, justify=justify)  # type: ignore[arg-type]
    for ts in state.topics:
        if not ts.exists:
            topics.add_row(ts.topic, "-", "-", "[red]missing[/red]", "-")
            continue
        last = "?" if ts.last_minute is None else str(ts.last_minute)
        topics.add_row(ts.topic, str(len(ts.partitions)), str(ts.messages),
                       " ".join(f"{p.partition}:{p.end}" for p in ts.partitions), last)
    topics.caption = f"last minute: {state.rate_method}"

    groups = Table(title="Consumer groups", title_justify="left")
    for column, justify in (("group", "left"), ("role", "left"), ("topic", "left"),
                            ("committed", "right"), ("end", "right"), ("lag", "right")):
        groups.add_column(column, justify=justify)  # type: ignore[arg-type]
    for g in state.groups:
        if not g.topics:
            groups.add_row(g.group, g.role, "-", "-", "-", "-" if g.started else "[dim]not started[/dim]")
        for i, t in enumerate(g.topics):
            committed = str(t.committed) if any(p.committed is not None for p in t.partitions) else "-"
            lag = f"[yellow]{t.lag}[/yellow]" if t.lag else "0"
            if t.beyond_end:
                lag = "[red]beyond end: " + ", ".join(f"{p.partition}:{p.committed}>{p.end}"
                                                      for p in t.beyond_end) + "[/red]"
            groups.add_row(g.group if i == 0 else "", g.role if i == 0 else "", t.topic, committed,
                           str(t.end), lag)

    dead = Table(title="Dead letters", title_justify="left")
    for column, justify in (("topic", "left"), ("dead letters", "right"), ("not replayed", "right")):
        dead.add_column(column, justify=justify)  # type: ignore[arg-type]
    for d in state.dead_letters:
        pending = f"[red]{d.not_replayed}[/red]" if d.not_replayed else "0"
        dead.add_row(d.topic, str(d.total), pending)
    dead.caption = "ebackpack deadletters list | inspect | replay"
    return Group(topics, groups, dead, *state.notes)


# --- dead letters ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeadLetterView:
    dlq_topic: str
    partition: int
    offset: int
    time: datetime
    consumer: str
    reason: str
    error_type: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: str | None  # the original key as text (undecodable bytes replaced)
    value_size: int
    replayed: bool  # below the replay position


@dataclass(frozen=True)
class Inspection:
    view: DeadLetterView
    dead_letter: DeadLetter
    key: bytes | None
    value: bytes
    decoded: Any  # the original value as JSON (dict/list...) if it is JSON, else text, else None


def resolve_dlq(settings: Settings, name: str) -> str:
    """A dead-letter topic on the broker from its name with or without prefix, or its source topic's."""
    for short in dlq_topics():
        if name in (short, settings.topic(short), short.removesuffix(DLQ_SUFFIX),
                    settings.topic(short.removesuffix(DLQ_SUFFIX))):
            return settings.topic(short)
    raise ValueError(f"no dead-letter topic {name!r}; known: {', '.join(dlq_topics())}")


def _parse(record: ConsumerRecord) -> DeadLetterMessage | None:
    try:
        return DeadLetterMessage.model_validate_json(record.value or b"")
    except ValidationError:
        return None


def _view(record: ConsumerRecord, letter: DeadLetterMessage | None, position: int) -> DeadLetterView:
    stamp = datetime.fromtimestamp(max(record.timestamp or 0, 0) / 1000, UTC)
    if letter is None:
        return DeadLetterView(record.topic, record.partition, record.offset, stamp, "?",
                              "not a dead letter (unreadable record)", "?", "?", -1, -1, None,
                              len(record.value or b""), record.offset < position)
    d = letter.data
    key = base64.b64decode(d.key_b64).decode("utf-8", "replace") if d.key_b64 is not None else None
    return DeadLetterView(record.topic, record.partition, record.offset, letter.time, d.consumer, d.reason,
                          d.error_type, d.topic, d.partition, d.offset, key, len(d.value),
                          record.offset < position)


def _positions(broker: Broker, settings: Settings, tps: Iterable[TopicPartition],
               starts: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    committed = broker.committed(replay_group(settings))
    return {tp: max(committed.get(tp, 0), starts[tp]) for tp in tps}


def dead_letters(settings: Settings, topic: str | None = None) -> list[DeadLetterView]:
    """Every dead letter the dead-letter topics hold (or one of them), oldest first per topic."""
    names = [resolve_dlq(settings, topic)] if topic else [settings.topic(t) for t in dlq_topics()]
    with Broker(settings) as broker:
        tps = [tp for name in names for tp in broker.partitions(name)]
        starts, ends = broker.offsets(tps)
        positions = _positions(broker, settings, tps, starts)
        records = broker.read({tp: (starts[tp], ends[tp]) for tp in tps})
    return [_view(r, _parse(r), positions[TopicPartition(r.topic, r.partition)]) for r in records]


def _decode(value: bytes) -> Any:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def inspect(settings: Settings, dlq_topic: str, offset: int, partition: int = 0) -> Inspection:
    """One dead letter with its original key and value (decoded when it is JSON or text)."""
    name = resolve_dlq(settings, dlq_topic)
    tp = TopicPartition(name, partition)
    with Broker(settings) as broker:
        starts, _ends = broker.offsets([tp], exact=False)
        position = _positions(broker, settings, [tp], starts)[tp]
        found = broker.read({tp: (offset, offset + 1)})
    if not found:
        raise LookupError(f"no dead letter at {name}/{partition}/{offset}")
    record = found[0]
    letter = _parse(record)
    if letter is None:
        raise ValueError(f"{name}/{partition}/{offset} is not a dead letter")
    d = letter.data
    key = base64.b64decode(d.key_b64) if d.key_b64 is not None else None
    return Inspection(_view(record, letter, position), d, key, d.value, _decode(d.value))


def render_dead_letters(views: list[DeadLetterView]) -> Table:
    """`dead_letters()` as a rich table, one row per dead letter."""
    table = Table(title=f"{len(views)} dead letters", title_justify="left")
    for column in ("topic", "offset", "time (UTC)", "consumer", "error", "reason", "source", "key",
                   "replayed"):
        table.add_column(column, overflow="fold")
    for v in views:
        table.add_row(v.dlq_topic, f"{v.partition}/{v.offset}" if v.partition else str(v.offset),
                      f"{v.time.astimezone(UTC):%Y-%m-%d %H:%M:%S}", v.consumer, v.error_type, v.reason,
                      f"{v.source_topic}/{v.source_partition}/{v.source_offset}", v.key or "-",
                      "yes" if v.replayed else "[yellow]no[/yellow]")
    return table


def render_inspection(seen: Inspection) -> Group:
    """`inspect()` for the terminal: where the dead letter came from, why, and the original message."""
    from rich.pretty import Pretty

    v = seen.view
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column(overflow="fold")
    for label, text in (
        ("dead letter", f"{v.dlq_topic}/{v.partition}/{v.offset}"),
        ("time", f"{v.time.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"),
        ("consumer", v.consumer),
        ("error", v.error_type),
        ("reason", v.reason),
        ("source", f"{v.source_topic}/{v.source_partition}/{v.source_offset}"),
        ("key", repr(seen.key) if seen.key is not None else "-"),
        ("value", f"{len(seen.value)} bytes{'' if seen.decoded is not None else ', binary (base64 below)'}"),
        ("replayed", "yes" if v.replayed else "no"),
    ):
        facts.add_row(label, text)
    if seen.decoded is None:
        body: Any = base64.b64encode(seen.value).decode()
    elif isinstance(seen.decoded, str):
        body = seen.decoded
    else:
        body = Pretty(seen.decoded)
    return Group(facts, body)


def replay(settings: Settings, dlq_topic: str, offsets: Collection[int] | None = None, *,
           dry_run: bool = False, force: bool = False, partition: int = 0) -> int:
    """Republish dead letters' original key and value to their source topic (after the cause is fixed).

    `offsets` None: every dead letter not replayed yet (all partitions of the topic); else those offsets
    of `partition`, skipping ones replayed before unless `force`. Returns how many were (with
    `dry_run`: would be) republished. Bookkeeping: see the module's docstring.
    """
    name = resolve_dlq(settings, dlq_topic)
    with Broker(settings) as broker:
        tps = broker.partitions(name) if offsets is None else [TopicPartition(name, partition)]
        starts, ends = broker.offsets(tps)
        positions = _positions(broker, settings, tps, starts)
        if offsets is None:
            records = broker.read({tp: (positions[tp], ends[tp]) for tp in tps})
        else:
            chosen = sorted({o for o in offsets if force or o >= positions[tps[0]]})
            records = broker.read({tps[0]: (chosen[0], chosen[-1] + 1)}) if chosen else []
            records = [r for r in records if r.offset in set(chosen)]
            missing = set(chosen) - {r.offset for r in records}
            if missing:
                raise LookupError(f"no dead letters at offsets {sorted(missing)} of {name}/{partition}")
    todo: list[tuple[ConsumerRecord, DeadLetterMessage]] = []
    for record in records:
        letter = _parse(record)
        if letter is None:
            log.warning("%s/%d/%d is not a dead letter: passed over", record.topic, record.partition,
                        record.offset)
        else:
            todo.append((record, letter))
    if dry_run:
        return len(todo)
    _republish(settings, todo)
    after = _advance(positions, records, everything=offsets is None)
    if after != positions:
        _commit(settings, replay_group(settings), after)
    beyond = [r.offset for r in records if r.offset >= after[_tp_of(r)]]
    if beyond:
        log.warning("replayed %s of %s beyond a gap of dead letters not replayed: not recorded, a replay "
                    "of all sends them again", beyond, name)
    return len(todo)


def _tp_of(record: ConsumerRecord) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)


def _advance(positions: dict[TopicPartition, int], records: list[ConsumerRecord],
             everything: bool) -> dict[TopicPartition, int]:
    """The replay positions after replaying `records`: past the last one read when replaying everything
    from the position (the read covered every offset there is); over the run of replayed offsets that
    starts at the position when replaying chosen ones."""
    result = dict(positions)
    for tp in result:
        done = sorted(r.offset for r in records if _tp_of(r) == tp)
        if everything:
            result[tp] = max([result[tp], *(o + 1 for o in done)])
            continue
        for offset in done:
            if offset == result[tp]:
                result[tp] += 1
    return result


def _republish(settings: Settings, todo: list[tuple[ConsumerRecord, DeadLetterMessage]]) -> None:
    if not todo:
        return
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap.split(","), acks="all",
                             client_id="ebackpack-replay", max_in_flight_requests_per_connection=1)
    try:
        futures = []
        for record, letter in todo:
            d = letter.data
            key = base64.b64decode(d.key_b64) if d.key_b64 is not None else None
            origin = f"{record.topic}/{record.partition}/{record.offset}".encode()
            futures.append(producer.send(d.topic, key=key, value=d.value, headers=[(REPLAY_HEADER, origin)]))
        producer.flush()
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close(timeout=10)


def _commit(settings: Settings, group: str, positions: dict[TopicPartition, int]) -> None:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap.split(","), group_id=group,
                             client_id="ebackpack-replay", enable_auto_commit=False)
    try:
        consumer.assign(list(positions))
        consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in positions.items()})
    finally:
        consumer.close(autocommit=False)


__all__ = [
    "Broker", "DeadLetterCount", "DeadLetterView", "GroupStatus", "Inspection", "Status",
    "TopicStatus", "dead_letters", "group_lag", "inspect", "known_groups",
    "render_dead_letters", "render_inspection", "render_status", "replay", "replay_group", "resolve_dlq",
    "status",
]
