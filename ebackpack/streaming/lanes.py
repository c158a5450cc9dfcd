"""Two lanes into one writer: live work first, history (a backfill, an import) only when no live work waits.

A worker that consumes a live topic and its backfill topic (`moodle.events`, `moodle.events.backfill`)
runs one agent per topic; faust fetches both, and a backfill agent that falls behind has its partitions
taken out of the fetch while its buffer is full, so live messages keep coming in. What is left to order
is the work itself: both agents write through one `LaneLock`, and a backfill batch gets the lock only when
it is free and no live writer waits for it. A live batch that arrives while a backfill batch is being
written waits for that one batch, no more: the backfill's batch size bounds what live events pay.

`Backlog` is the second brake, for the work a backfill hands downstream: before a backfill batch, the
worker waits while a downstream consumer group (the renderer) has more than a bound of messages not yet
committed, so the downstream queue that live work joins stays short.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from .steps import BatchHandler, BatchOutcome, SourceMessage

log = logging.getLogger(__name__)

LIVE, BACKFILL = 0, 1  # priorities: lower goes first
# Messages per agent's buffer in a worker with lanes (faust's default: 4,096; one setting per worker).
# Records already fetched are handed to their agent's buffer even after faust stopped fetching a
# partition whose buffer is under pressure (at 80 %), and a full buffer stops the hand-over of every
# topic: a live message fetched behind backfill records would wait until the backfill agent took them.
# The 20 % above the pressure mark must hold what one poll hands over: app.MAX_POLL_RECORDS
# (bench/README.md, "Backfill beside live events").
LANE_BUFFER = 16_384


class LaneLock:
    """A mutex whose waiters are served by lane: every live waiter before any backfill waiter, each lane
    in arrival order. Not reentrant, for one event loop."""

    def __init__(self) -> None:
        self._held = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = 0

    @property
    def live_waiting(self) -> int:
        return sum(1 for lane, _n, _f in self._waiters if lane == LIVE)

    def locked(self) -> bool:
        return self._held

    async def acquire(self, lane: int = LIVE) -> None:
        if not self._held and not self._waiters:
            self._held = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._arrivals += 1
        self._waiters.append((lane, self._arrivals, future))
        self._waiters.sort(key=lambda waiter: waiter[:2])
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # handed the lock, then cancelled: pass it on
                self.release()
            else:
                self._waiters = [w for w in self._waiters if w[2] is not future]
            raise

    def release(self) -> None:
        if not self._held:
            raise RuntimeError("LaneLock released while not held")
        while self._waiters:
            _lane, _n, future = self._waiters.pop(0)
            if not future.done():
                future.set_result(None)  # stays held: handed over
                return
        self._held = False

    @asynccontextmanager
    async def lane(self, lane: int = LIVE) -> AsyncIterator[None]:
        await self.acquire(lane)
        try:
            yield
        finally:
            self.release()


class Backlog:
    """Waits while `measure()` (run in a thread: it may ask the broker) says more than `limit` messages are
    waiting downstream. A measurement is reused for `interval` seconds; one that fails counts as room
    (a broker away stops the pipeline anyway, and the brake must not stop the backfill for good)."""

    def __init__(self, measure: Callable[[], int], limit: int, interval: float = 0.5) -> None:
        self.measure, self.limit, self.interval = measure, limit, interval
        self._value, self._at = 0, float("-inf")
        self._lock = asyncio.Lock()

    async def current(self) -> int:
        async with self._lock:
            if time.monotonic() - self._at >= self.interval:
                try:
                    self._value = await asyncio.to_thread(self.measure)
                except Exception as exc:
                    log.warning("downstream backlog not read: %s", exc)
                    self._value = 0
                self._at = time.monotonic()
            return self._value

    async def room(self) -> None:
        """Returns once the backlog is at most `limit` (at once when `limit` is 0: no brake)."""
        if self.limit <= 0:
            return
        while (waiting := await self.current()) > self.limit:
            log.debug("backfill waits: %d messages downstream (limit %d)", waiting, self.limit)
            await asyncio.sleep(self.interval)


async def in_chunks(
    messages: list[SourceMessage], chunk_size: Callable[[], int], handle: BatchHandler
) -> BatchOutcome:
    """`handle` on consecutive chunks of a batch, each chunk's size asked for just before it (a backfill
    lane takes smaller ones while live work comes), with the poison messages' indexes in the batch."""
    poison: list[tuple[int, Exception]] = []
    start = 0
    while start < len(messages):
        chunk = messages[start : start + max(1, chunk_size())]
        outcome = await handle(chunk)
        poison += [(start + index, exc) for index, exc in outcome.poison]
        start += len(chunk)
    return BatchOutcome(poison=poison)
