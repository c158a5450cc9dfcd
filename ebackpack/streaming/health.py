"""Which consumer streams are paused on a dependency that is down, so that an operator sees it.

Three views of the same state: the gauge `ebackpack_consumer_paused{consumer}` (streams paused now), a log
line when a stream pauses and when it resumes, and a small JSON file per paused stream under
`<data_dir>/consumers/` that `ebackpack status` lists (workers write it only after `configure()`, i.e. in
a worker process; the file goes when the stream resumes, and a file whose process has died is ignored).
The state is local on purpose: while the database or the broker is down it cannot be stored there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.table import Table

from ebackpack.adapters import metrics

from .errors import describe

log = logging.getLogger(__name__)
MAX_REASON = 300  # characters of the cause kept in a state file
_lock = threading.Lock()
_paused: Counter[str] = Counter()  # consumer -> streams paused now (this process)
_state_dir: list[Path] = []  # set by configure(): where this worker writes its paused streams


def configure(data_dir: Path) -> None:
    """Called by `make_app`: this process reports its paused streams under `data_dir/consumers`."""
    _state_dir[:] = [data_dir / "consumers"]


@dataclass
class StreamHealth:
    """The `PauseReport` of one stream (consumer + topic) of this process."""

    consumer: str
    topic: str

    def __post_init__(self) -> None:
        # The gauge exists from the stream's start (0 = flowing), not only after a first pause: a healthy
        # consumer shows 0 on the dashboard, not "no data".
        with _lock:
            metrics.consumer_paused(self.consumer, _paused[self.consumer])

    @property
    def _file(self) -> Path | None:
        if not _state_dir:
            return None
        name = f"{self.consumer}.{self.topic}.{socket.gethostname()}.{os.getpid()}.json"
        return _state_dir[0] / name.replace("/", "_")

    def paused(self, cause: BaseException) -> None:
        reason = describe(cause)[:MAX_REASON]
        log.warning(
            "paused %s on %s: a dependency is down (%s); trying the same message again until it "
            "works, nothing later is taken",
            self.consumer,
            self.topic,
            reason,
        )
        with _lock:
            _paused[self.consumer] += 1
            metrics.consumer_paused(self.consumer, _paused[self.consumer])
        path = self._file
        if path is not None:
            with contextlib.suppress(OSError):  # a full disk must not stop the retries
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(
                    json.dumps(
                        {
                            "consumer": self.consumer,
                            "topic": self.topic,
                            "host": socket.gethostname(),
                            "pid": os.getpid(),
                            "since": datetime.now(UTC).isoformat(),
                            "reason": reason,
                        }
                    )
                )

    def resumed(self, seconds: float, stopped: bool = False) -> None:
        if stopped:
            log.warning(
                "stopping %s on %s after %.1f s paused: the message is taken again on the next start",
                self.consumer,
                self.topic,
                seconds,
            )
        else:
            log.warning("resumed %s on %s after %.1f s paused", self.consumer, self.topic, seconds)
        with _lock:
            _paused[self.consumer] -= 1
            metrics.consumer_paused(self.consumer, _paused[self.consumer])
        path = self._file
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


@dataclass(frozen=True)
class PausedStream:
    consumer: str
    topic: str
    host: str
    pid: int
    since: datetime
    reason: str


def paused_streams(data_dir: Path) -> list[PausedStream]:
    """The paused streams the workers of this host report (files of dead processes are skipped)."""
    found = []
    for path in sorted((data_dir / "consumers").glob("*.json")):
        try:
            state = json.loads(path.read_text()[:4096])
            stream = PausedStream(
                str(state["consumer"]),
                str(state["topic"]),
                str(state["host"]),
                int(state["pid"]),
                datetime.fromisoformat(state["since"]),
                str(state["reason"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if stream.host == socket.gethostname() and not _alive(stream.pid):
            continue
        found.append(stream)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def render_health(streams: list[PausedStream], parked: dict[str, int] | None = None) -> Table:
    """`ebackpack status`: paused consumer streams (and messages parked, waiting for data)."""
    table = Table(title="Paused consumers", title_justify="left")
    for column in ("consumer", "topic", "paused since", "process", "because"):
        table.add_column(column)
    now = datetime.now(UTC)
    for s in streams:
        table.add_row(
            f"[yellow]{s.consumer}[/yellow]",
            s.topic,
            f"{s.since:%H:%M:%S} ({(now - s.since).total_seconds():.0f} s)",
            f"{s.host}/{s.pid}",
            s.reason,
        )
    if not streams:
        table.add_row("none", "", "", "", "every consumer is flowing")
    notes = [
        f"{consumer}: {count} message(s) parked, waiting for a profile"
        for consumer, count in sorted((parked or {}).items())
    ]
    table.caption = "; ".join(notes) if notes else "no message is parked"
    return table


def parked_counts(db_url: str) -> dict[str, int] | None:
    """Messages parked in SQL, per consumer (the issuer's only, so far); None if the database is away."""
    from sqlalchemy import func, select

    from ebackpack.adapters.persistence.engine import make_engine
    from ebackpack.adapters.persistence.tables import ParkedMessageRow

    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            count = connection.scalar(select(func.count()).select_from(ParkedMessageRow)) or 0
        return {"issuer": int(count)}
    except Exception as exc:  # no database, or not migrated yet: the table says so
        log.info("parked messages not counted: %s", exc)
        return None
    finally:
        engine.dispose()


def consumer_health(data_dir: Path, db_url: str) -> Table:
    """The section `ebackpack status` prints after the broker's tables."""
    parked = parked_counts(db_url)
    table = render_health(paused_streams(data_dir), parked)
    if parked is None:
        table.caption = "parked messages: the database is not reachable"
    return table
