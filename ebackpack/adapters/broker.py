"""The broker as the operator tools and the workers' offset guard read it (kafka-python, blocking):
partitions, offsets, committed positions and records at known offsets.

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
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from ebackpack.config import Settings

log = logging.getLogger(__name__)


log = logging.getLogger(__name__)

READ_TIMEOUT = 10.0  # seconds a read of known offsets may take before it gives up on the rest
FETCH_WAIT_MS = 100  # a fetch at a partition's end answers (empty, with the high watermark) after this
# A probe needs one record per partition: a fetch of this many bytes a partition (the broker still sends
# a whole first batch that is larger). The default, 1 MiB a partition, made the offset guard read and
# decode megabytes every few seconds on a worker that was catching up.
PROBE_FETCH_BYTES = 16 * 1024


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
                self.admin = KafkaAdminClient(
                    bootstrap_servers=bootstrap, client_id="ebackpack-ops", request_timeout_ms=10_000
                )
                break
            except KafkaError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Kafka at {settings.kafka_bootstrap} is not reachable: {exc}"
                    ) from exc
                time.sleep(0.5)
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="ebackpack-ops",
            enable_auto_commit=False,
            request_timeout_ms=15_000,
            max_poll_records=2000,
            fetch_max_wait_ms=FETCH_WAIT_MS,
        )

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

    def offsets(
        self,
        tps: Collection[TopicPartition],
        exact: bool = True,
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
            log.warning(
                "no high watermark of %s within %.0f s: reported end offsets kept",
                sorted(str(tp) for tp in ends if tp not in found),
                timeout,
            )
        return {**ends, **found}

    def high_watermarks(
        self, ends: dict[TopicPartition, int], timeout: float = 5.0
    ) -> dict[TopicPartition, int]:
        """The high watermark of each partition that answered a fetch (at its reported end - 1) in time."""
        probed = self.probe({tp: max(0, end - 1) for tp, end in ends.items()}, timeout)
        return {tp: found.highwater for tp, found in probed.items()}

    def probe(
        self, positions: dict[TopicPartition, int], timeout: float = 5.0
    ) -> dict[TopicPartition, Probe]:
        """For each partition that answered in time: its high watermark and the first record at or after
        the position (offset and fingerprint), if the log has one there.

        A consumer of its own each time: a reused one may answer with the high watermark of a fetch it
        sent ahead before the last messages came (same offset, so the client takes it as current)."""
        if not positions:
            return {}
        found: dict[TopicPartition, Probe] = {}
        first: dict[TopicPartition, tuple[int, str]] = {}
        reader = KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap.split(","),
            client_id="ebackpack-ops",
            enable_auto_commit=False,
            request_timeout_ms=15_000,
            fetch_max_wait_ms=FETCH_WAIT_MS,
            max_partition_fetch_bytes=PROBE_FETCH_BYTES,
        )
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

    def offsets_since(
        self, tps: Collection[TopicPartition], since_ms: int
    ) -> dict[TopicPartition, int | None]:
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

    def read(
        self, ranges: dict[TopicPartition, tuple[int, int]], timeout: float = READ_TIMEOUT
    ) -> list[ConsumerRecord]:
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


def group_lag(
    broker: Broker, group: str, topics: Iterable[str], exact: bool = True
) -> dict[tuple[str, int], int]:
    """(topic, partition) -> messages `group` has not committed yet. A partition the group never
    committed on counts from its first offset (the workers start at the earliest offset)."""
    tps = [tp for topic in dict.fromkeys(topics) for tp in broker.partitions(topic)]
    starts, ends = broker.offsets(tps, exact=exact)
    committed = broker.committed(group)
    return {(tp.topic, tp.partition): max(0, ends[tp] - committed.get(tp, starts[tp])) for tp in tps}
