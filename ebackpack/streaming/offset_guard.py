"""Every worker's guard against a broker that lost data.

When a broker loses messages (the embedded broker restarted on memory storage, its data deleted, an
unclean leader election on Apache Kafka) a consumer group's committed offset can be beyond the log's new
end. The consumer then sits at that offset: on Tansu the fetches come back empty, on Apache Kafka the
client resets to the earliest offset but faust drops every message below its committed offset. Either
way the messages written at the lower offsets after the loss are never handled, and the lag looks 0.

When new messages arrive before anyone looks, the new log can even grow past the committed offset:
nothing is beyond the end any more, but the messages below it are still skipped. So each worker also
keeps a mark per partition: the offset and fingerprint of the last record its group handled there
(`Marks`, on local disk, so a loss while the workers were stopped is caught too). A record is never
rewritten at its offset; another record there means the log was lost and written anew.

`guard_offsets(app, settings)` (called by `make_app`) checks every `GUARD_INTERVAL` seconds, for the
partitions this worker owns, the group's committed offsets against the fetch high watermarks and the
marked records (`find_lost`; the same on Tansu and Apache Kafka, where compaction or retention removing
a marked record is no loss). Each partition found is reported (an error log line,
`ebackpack_offset_resets_total{group,topic}`, a line in `<data_dir>/consumers/offset-resets.jsonl` that
`ebackpack status` lists) and repaired: the worker seeks the partition to the log's start and commits
that offset. Handlers are idempotent, so reading again what is there costs time, not correctness. What
the lost messages would have caused is re-derived from SQL by their producers (the issuer sends again
render requests whose PDF was never stored: services/issuer/repair.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Collection
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
from faust.types import TP
from kafka import TopicPartition
from prometheus_client import Counter

from ebackpack.adapters.broker import Broker, Probe
from ebackpack.adapters.files import private_dir, write_private
from ebackpack.config import Settings

log = logging.getLogger(__name__)
GUARD_INTERVAL = 5.0
RESETS_FILE = "offset-resets.jsonl"
MARKS_DIR = "marks"
MAX_REPORTED = 50  # resets `ebackpack status` lists (the newest)

OFFSET_RESETS = Counter(
    "ebackpack_offset_resets",
    "Partitions a consumer group had read further than the broker's log now "
    "goes, or whose log was replaced (the broker lost messages), and that its worker read again from "
    "the log's start.",
    ["group", "topic"],
)


@dataclass(frozen=True)
class LostLog:
    """A partition whose log no longer holds what `group` has handled."""

    group: str
    topic: str
    partition: int
    committed: int
    start: int
    end: int
    reason: str


Mark = tuple[int, str]  # (offset, adapters.broker.fingerprint of the record there)


@dataclass(frozen=True)
class Marks:
    """Per partition, two records the group's log held, as this host's workers saw them: the first one
    (`anchor`, set the first time the partition is checked) and the last one the group handled (`last`,
    moved on at every check), in `<data_dir>/consumers/marks/<group>/<topic>.<partition>.json`. A record
    is never rewritten at its offset, so another record at a marked offset means the log was lost and
    written anew; kept on disk, the marks also catch a loss that happened while the workers were
    stopped."""

    folder: Path

    @classmethod
    def of(cls, data_dir: Path, group: str) -> Marks:
        return cls(data_dir / "consumers" / MARKS_DIR / group.replace("/", "_"))

    def _path(self, tp: TopicPartition) -> Path:
        return self.folder / f"{tp.topic.replace('/', '_')}.{tp.partition}.json"

    def get(self, tp: TopicPartition) -> tuple[Mark | None, Mark | None]:
        """(anchor, last)."""
        try:
            found = json.loads(self._path(tp).read_text()[:2048])
            return (_mark(found.get("anchor")), _mark(found.get("last")))
        except (OSError, ValueError, AttributeError):
            return None, None

    def put(self, tp: TopicPartition, anchor: Mark | None, last: Mark | None) -> None:
        with contextlib.suppress(OSError):  # without marks only the beyond-the-end check is left
            private_dir(self.folder)
            write_private(self._path(tp), json.dumps({"anchor": anchor, "last": last}).encode())

    def drop(self, tp: TopicPartition) -> None:
        with contextlib.suppress(OSError):
            self._path(tp).unlink(missing_ok=True)


def _mark(raw: Any) -> Mark | None:
    try:
        return int(raw[0]), str(raw[1])
    except (TypeError, ValueError, IndexError, KeyError):
        return None


def _replaced(mark: Mark | None, found: Probe | None) -> bool:
    """Another record at the marked offset (a record removed by compaction or retention is no loss)."""
    return mark is not None and found is not None and found.offset == mark[0] and found.fingerprint != mark[1]


def find_lost(broker: Broker, group: str, owned: Collection[TopicPartition], marks: Marks) -> list[LostLog]:
    """The partitions of `owned` whose log lost what `group` handled: committed beyond the high
    watermark, or a marked record replaced by another. The marks move on to the newest handled record;
    a partition is anchored the first time it holds a record, committed on or not."""
    if not owned:
        return []
    committed = {tp: offset for tp, offset in broker.committed(group).items() if tp in owned}
    starts, _ends = broker.offsets(list(owned), exact=False)
    known = {tp: marks.get(tp) for tp in owned}
    firsts = broker.probe({tp: anchor[0] if (anchor := known[tp][0]) else starts[tp] for tp in owned})
    lasts = broker.probe(
        {tp: last[0] if (last := known[tp][1]) else max(0, offset - 1) for tp, offset in committed.items()}
    )
    lost, refresh = [], {}
    for tp in owned:
        (anchor, last), first, latest, offset = known[tp], firsts.get(tp), lasts.get(tp), committed.get(tp)
        if first is None or (offset is not None and latest is None):
            continue  # no answer in time: nothing is concluded
        end = latest.highwater if latest is not None else first.highwater
        if offset is not None and offset > end:
            reason = f"committed offset {offset} is beyond the log end {end}"
        elif _replaced(anchor, first) or _replaced(last, latest):
            mark = anchor if _replaced(anchor, first) else last
            reason = f"the record at offset {mark[0] if mark else '?'} is not the one that was there before"
        else:
            if (anchor is None or first.offset != anchor[0]) and first.offset is not None:
                anchor = (first.offset, first.fingerprint or "")  # first sight, or compacted away
            if offset and latest is not None and latest.offset == offset - 1 and latest.fingerprint:
                last = (offset - 1, latest.fingerprint)
            elif offset and (last is None or last[0] != offset - 1):
                refresh[tp] = offset - 1
            if (anchor, last) != known[tp]:
                marks.put(tp, anchor, last)
            continue
        lost.append(LostLog(group, tp.topic, tp.partition, offset or 0, starts[tp], end, reason))
    for tp, found in broker.probe(refresh).items():
        if found.offset == refresh[tp] and found.fingerprint is not None:
            marks.put(tp, marks.get(tp)[0], (refresh[tp], found.fingerprint))
    return lost


def guard_offsets(app: faust.App, settings: Settings) -> None:
    """Installs the check as a timer of `app` (see the module's docstring)."""
    group = str(app.conf.id)
    marks = Marks.of(settings.data_dir, group)
    probe: dict[str, Broker] = {}

    def check(owned: Collection[TopicPartition]) -> list[LostLog]:
        if "broker" not in probe:
            probe["broker"] = Broker(settings, timeout=5.0)
        try:
            return find_lost(probe["broker"], group, owned, marks)
        except Exception:
            probe.pop("broker").close()  # reconnect next time
            raise

    @app.timer(GUARD_INTERVAL)
    async def guard_committed_offsets() -> None:
        assigned = app.consumer.assignment()
        if not assigned:
            return
        try:
            owned = {TopicPartition(tp.topic, tp.partition) for tp in assigned}
            found = await asyncio.to_thread(check, owned)
        except Exception as exc:  # the broker is away: the next tick tries again
            log.info("committed offsets of %s not checked: %s", group, exc)
            return
        for lost in found:
            tp = TP(lost.topic, lost.partition)
            if tp not in app.consumer.assignment():  # another worker of the group repairs its own
                continue
            try:
                committed = await reset_to_start(app.consumer, tp, lost.start)
            except Exception as exc:  # a rebalance under way: the next tick finds it again
                log.warning("offset of %s/%d not reset yet: %s", lost.topic, lost.partition, exc)
                continue
            if committed:
                marks.drop(TopicPartition(lost.topic, lost.partition))
                report(settings.data_dir, lost)


async def reset_to_start(consumer: Any, tp: TP, start: int) -> bool:
    """Seeks `tp` to the log's start, forgets the committed offset faust keeps (it would skip every
    offset below it), and commits the start so that the broker and `ebackpack status` agree. False when
    the commit was refused (a rebalance): the next check finds the partition again."""
    await consumer.seek(tp, start)
    # faust has no public call for this: its consumer skips and never commits offsets below the
    # committed offset it remembers.
    consumer._committed_offset[tp] = start or None
    return bool(await consumer._commit({tp: start}))  # False: rebalanced meanwhile, found again


def report(data_dir: Path, lost: LostLog) -> None:
    log.error(
        "broker lost data: consumer group %s on %s/%d: %s; reading the partition again from offset "
        "%d (handling is idempotent)",
        lost.group,
        lost.topic,
        lost.partition,
        lost.reason,
        lost.start,
    )
    OFFSET_RESETS.labels(lost.group, lost.topic).inc()
    with contextlib.suppress(OSError):  # a full disk must not stop the repair
        folder = private_dir(data_dir / "consumers")
        with (folder / RESETS_FILE).open("a") as file:
            file.write(json.dumps({"at": datetime.now(UTC).isoformat(), **asdict(lost)}) + "\n")


def recent_resets(data_dir: Path, limit: int = MAX_REPORTED) -> list[dict[str, Any]]:
    """The newest resets the workers of this host reported, newest last."""
    path = data_dir / "consumers" / RESETS_FILE
    try:
        lines = path.read_text().splitlines()[-limit:]
    except OSError:
        return []
    found = []
    for line in lines:
        with contextlib.suppress(ValueError):
            found.append(json.loads(line))
    return found
