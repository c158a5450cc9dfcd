"""The dead-letter tool: list, inspect and replay dead letters.

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
import json
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from ebackpack.adapters.broker import Broker
from ebackpack.adapters.kafka import bounded_producer
from ebackpack.config import Settings
from ebackpack.ops.groups import DLQ_SUFFIX, REPLAY_HEADER, dlq_topics, replay_group
from schemas import DeadLetter, DeadLetterMessage

log = logging.getLogger(__name__)
REPUBLISH_TIMEOUT = 60.0  # seconds the broker may take to acknowledge the replayed messages


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
        if name in (
            short,
            settings.topic(short),
            short.removesuffix(DLQ_SUFFIX),
            settings.topic(short.removesuffix(DLQ_SUFFIX)),
        ):
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
        return DeadLetterView(
            record.topic,
            record.partition,
            record.offset,
            stamp,
            "?",
            "not a dead letter (unreadable record)",
            "?",
            "?",
            -1,
            -1,
            None,
            len(record.value or b""),
            record.offset < position,
        )
    d = letter.data
    key = base64.b64decode(d.key_b64).decode("utf-8", "replace") if d.key_b64 is not None else None
    return DeadLetterView(
        record.topic,
        record.partition,
        record.offset,
        letter.time,
        d.consumer,
        d.reason,
        d.error_type,
        d.topic,
        d.partition,
        d.offset,
        key,
        len(d.value),
        record.offset < position,
    )


def _positions(
    broker: Broker, settings: Settings, tps: Iterable[TopicPartition], starts: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
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


def replay(
    settings: Settings,
    dlq_topic: str,
    offsets: Collection[int] | None = None,
    *,
    dry_run: bool = False,
    force: bool = False,
    partition: int = 0,
) -> int:
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
            log.warning(
                "%s/%d/%d is not a dead letter: passed over", record.topic, record.partition, record.offset
            )
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
        log.warning(
            "replayed %s of %s beyond a gap of dead letters not replayed: not recorded, a replay "
            "of all sends them again",
            beyond,
            name,
        )
    return len(todo)


def _tp_of(record: ConsumerRecord) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)


def _advance(
    positions: dict[TopicPartition, int], records: list[ConsumerRecord], everything: bool
) -> dict[TopicPartition, int]:
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
    producer = bounded_producer(settings, client_id="ebackpack-replay", timeout=REPUBLISH_TIMEOUT)
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
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        group_id=group,
        client_id="ebackpack-replay",
        enable_auto_commit=False,
    )
    try:
        consumer.assign(list(positions))
        consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in positions.items()})
    finally:
        consumer.close(autocommit=False)
