"""Every worker's guard against a broker that lost data.

When a broker loses messages (the embedded broker restarted on memory storage, its data deleted, an
unclean leader election on Apache Kafka) a consumer group's committed offset can be beyond the log's new
end. The consumer then sits at that offset: on Tansu the fetches come back empty, on Apache Kafka the
client resets to the earliest offset but faust drops every message below its committed offset. Either
way the messages written at the lower offsets after the loss are never handled, and the lag looks 0.

`guard_offsets(app, settings)` (called by `make_app`) checks every `GUARD_INTERVAL` seconds, for the
partitions this worker owns, whether its group committed beyond the log end (`ops.beyond_end`: the
broker's committed offsets and the fetch high watermarks, the same on Tansu and Apache Kafka). Each one
found is reported (an error log line, `ebackpack_offset_resets_total{group,topic}`, a line in
`<data_dir>/consumers/offset-resets.jsonl` that `ebackpack status` lists) and repaired: the worker seeks
the partition to the log's start and commits that offset. Handlers are idempotent, so reading again
what is there costs time, not correctness. What the lost messages would have caused is re-derived from
SQL by their producers (the issuer sends again render requests whose PDF was never stored:
services/issuer/repair.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Collection
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
from faust.types import TP
from prometheus_client import Counter
from rich.table import Table

from ebackpack.config import Settings
from ebackpack.files import private_dir
from ebackpack.ops import BeyondEnd, Broker, beyond_end

log = logging.getLogger(__name__)
GUARD_INTERVAL = 5.0
RESETS_FILE = "offset-resets.jsonl"
MAX_REPORTED = 50  # resets `ebackpack status` lists (the newest)

OFFSET_RESETS = Counter(
    "ebackpack_offset_resets", "Partitions a consumer group had committed beyond the log end (the broker "
    "lost messages) and that its worker read again from the log's start.", ["group", "topic"])


def guard_offsets(app: faust.App, settings: Settings) -> None:
    """Installs the check as a timer of `app` (see the module's docstring)."""
    group = str(app.conf.id)
    probe: dict[str, Broker] = {}

    def check(topics: Collection[str]) -> list[BeyondEnd]:
        if "broker" not in probe:
            probe["broker"] = Broker(settings, timeout=5.0)
        try:
            return beyond_end(probe["broker"], group, topics)
        except Exception:
            probe.pop("broker").close()  # reconnect next time
            raise

    @app.timer(GUARD_INTERVAL)
    async def guard_committed_offsets() -> None:
        assigned = app.consumer.assignment()
        if not assigned:
            return
        try:
            found = await asyncio.to_thread(check, {tp.topic for tp in assigned})
        except Exception as exc:  # the broker is away: the next tick tries again
            log.info("committed offsets of %s not checked: %s", group, exc)
            return
        for lost in found:
            tp = TP(lost.topic, lost.partition)
            if tp not in app.consumer.assignment():  # another worker of the group repairs its own
                continue
            try:
                committed = await reset_to_start(app.consumer, tp, lost)
            except Exception as exc:  # a rebalance under way: the next tick finds it again
                log.warning("offset of %s/%d not reset yet: %s", lost.topic, lost.partition, exc)
                continue
            if committed:
                report(settings.data_dir, lost)


async def reset_to_start(consumer: Any, tp: TP, lost: BeyondEnd) -> bool:
    """Seeks `tp` to the log's start, forgets the committed offset faust keeps (it would skip every
    offset below it), and commits the start so that the broker and `ebackpack status` agree. False when
    the commit was refused (a rebalance): the next check finds the partition again."""
    await consumer.seek(tp, lost.start)
    # faust has no public call for this: its consumer skips and never commits offsets below the
    # committed offset it remembers.
    consumer._committed_offset[tp] = lost.start or None
    return bool(await consumer._commit({tp: lost.start}))  # False: rebalanced meanwhile, found again


def report(data_dir: Path, lost: BeyondEnd) -> None:
    log.error("broker lost data: consumer group %s had committed offset %d on %s/%d, the log ends at %d; "
              "reading the partition again from offset %d (handling is idempotent)", lost.group,
              lost.committed, lost.topic, lost.partition, lost.end, lost.start)
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


def render_resets(data_dir: Path) -> Table | None:
    """`ebackpack status`: the partitions workers of this host read again because the broker lost data."""
    resets = recent_resets(data_dir)
    if not resets:
        return None
    table = Table(title="Offsets reset: the broker had lost data (newest last)", title_justify="left")
    for column in ("at (UTC)", "group", "partition", "committed", "log end", "read again from"):
        table.add_column(column)
    for r in resets:
        table.add_row(str(r.get("at", "?"))[:19].replace("T", " "), str(r.get("group")),
                      f"{r.get('topic')}/{r.get('partition')}", str(r.get("committed")), str(r.get("end")),
                      str(r.get("start")))
    table.caption = "what the lost messages caused is re-derived from SQL (render requests sent again)"
    return table
