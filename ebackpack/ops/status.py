"""What the pipeline is doing: topics, consumer groups, their lag and the dead letters waiting.

Read from the broker alone: works against a running system without its database, from any machine
that reaches the broker. `ebackpack status` renders it (ebackpack/cli/render.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kafka import TopicPartition
from kafka.errors import KafkaError

from ebackpack.adapters.broker import Broker
from ebackpack.config import Settings
from ebackpack.ops.groups import DLQ_SUFFIX, known_groups, replay_group
from ebackpack.streaming.topics import (
    TOPICS,
)

log = logging.getLogger(__name__)


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
            tp: 0 if since[tp] is None else max(0, ends[tp] - (since[tp] or 0)) for tp in all_tps
        }
    elif sample_seconds > 0:
        rate_method = f"two end-offset samples {sample_seconds:g} s apart, scaled to a minute"
        notes.append(
            f"The broker does not answer offsets_for_times: messages per minute estimated from "
            f"two samples {sample_seconds:g} s apart."
        )
        time.sleep(sample_seconds)
        _, later = broker.offsets(all_tps, exact=exact)
        last_minute = {tp: round((later[tp] - ends[tp]) * 60 / sample_seconds) for tp in all_tps}
    else:
        rate_method = "not measured"
        last_minute = {tp: None for tp in all_tps}

    topics = [
        TopicStatus(
            spec.name,
            settings.topic(spec.name),
            spec.doc,
            [PartitionStatus(tp.partition, starts[tp], ends[tp], last_minute[tp]) for tp in parts[spec.name]],
            exists=bool(parts[spec.name]),
        )
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
        names = list(
            dict.fromkeys(
                [*expected, *sorted(by_topic[tp.topic] for tp in committed if tp.topic in by_topic)]
            )
        )
        lags = []
        for name in names:
            tps = parts.get(name, [])
            lags.append(
                GroupTopicLag(
                    settings.topic(name),
                    name,
                    [
                        PartitionLag(
                            tp.partition,
                            committed.get(tp),
                            ends[tp],
                            max(0, ends[tp] - committed.get(tp, starts[tp])),
                        )
                        for tp in tps
                    ],
                )
            )
        groups.append(GroupStatus(group, role, lags, started=bool(committed)))

    for g in groups:
        for topic, p in g.beyond_end:
            notes.append(
                f"[red]Broker lost data:[/red] {g.group} ({g.role}) committed offset {p.committed} "
                f"on {topic}/{p.partition}, but the log ends at {p.end}. Its running workers read "
                "the partition again from its start within seconds (effects are idempotent); "
                "the issuer sends again render requests whose PDF was never stored."
            )
    replay = next(g for g in groups if g.group == replay_group(settings))
    dead = [
        DeadLetterCount(t.topic, t.name, t.messages, replay.lag_of(t.name) or 0)
        for t in topics
        if t.is_dead_letter_topic
    ]
    return Status(taken_at, settings.kafka_bootstrap, topics, groups, dead, rate_method, notes)
