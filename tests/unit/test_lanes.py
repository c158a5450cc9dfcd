"""The live lane goes first: `LaneLock` serves every live waiter before any backfill waiter, and `Backlog`
holds the backfill while downstream has too much waiting."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ebackpack.streaming.lanes import BACKFILL, LANE_BUFFER, LIVE, Backlog, LaneLock, in_chunks
from ebackpack.streaming.policy import SourceMessage
from ebackpack.streaming.steps import BatchOutcome


def test_live_waiters_are_served_before_backfill_waiters_each_lane_in_arrival_order() -> None:
    async def scenario() -> list[str]:
        lock, order = LaneLock(), []
        await lock.acquire(BACKFILL)  # a backfill batch is being written

        async def writer(name: str, lane: int) -> None:
            async with lock.lane(lane):
                order.append(name)
                await asyncio.sleep(0)

        tasks = []
        for name, lane in [("b1", BACKFILL), ("l1", LIVE), ("b2", BACKFILL), ("l2", LIVE)]:
            tasks.append(asyncio.create_task(writer(name, lane)))
            await asyncio.sleep(0)  # queued in this order
        assert lock.live_waiting == 2
        lock.release()
        await asyncio.gather(*tasks)
        assert not lock.locked()
        return order

    assert asyncio.run(scenario()) == ["l1", "l2", "b1", "b2"]


def test_a_cancelled_waiter_neither_holds_nor_blocks_the_lock() -> None:
    async def scenario() -> bool:
        lock = LaneLock()
        await lock.acquire(LIVE)
        waiting = asyncio.create_task(lock.acquire(LIVE))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        lock.release()
        await asyncio.wait_for(lock.acquire(BACKFILL), 1)  # free again
        lock.release()
        return lock.locked()

    assert asyncio.run(scenario()) is False


def test_the_backlog_brake_waits_until_downstream_has_room() -> None:
    readings = iter([500, 300, 150])
    measured: list[int] = []

    def measure() -> int:
        measured.append(next(readings))
        return measured[-1]

    asyncio.run(Backlog(measure, limit=200, interval=0.01).room())
    assert measured == [500, 300, 150]


def test_no_brake_without_a_limit_and_a_failed_reading_counts_as_room() -> None:
    def broken() -> int:
        raise ConnectionError("broker away")

    asyncio.run(Backlog(broken, limit=0).room())  # not even measured
    asyncio.run(asyncio.wait_for(Backlog(broken, limit=10, interval=0.01).room(), 2))


def test_a_batch_in_chunks_asks_each_chunks_size_and_keeps_the_batchs_poison_indexes() -> None:
    messages = [SourceMessage("t", 0, offset, None, str(offset).encode()) for offset in range(7)]
    sizes = iter([2, 2, 8])  # smaller chunks while live work comes, then the rest at once
    seen: list[list[int]] = []

    async def handle(chunk: list[SourceMessage]) -> BatchOutcome:
        seen.append([m.offset for m in chunk])
        poison = [(i, ValueError(m.offset)) for i, m in enumerate(chunk) if m.offset in (3, 5)]
        return BatchOutcome(poison=poison)

    outcome = asyncio.run(in_chunks(messages, lambda: next(sizes), handle))

    assert seen == [[0, 1], [2, 3], [4, 5, 6]]
    assert [index for index, _exc in outcome.poison] == [3, 5]


def test_what_one_poll_hands_over_fits_above_the_pressure_mark_of_a_lane_buffer(tmp_path: Path) -> None:
    """faust stops fetching a partition at its buffer's pressure mark but still hands over the rest of
    the poll; a poll that overfills the buffer would block every topic's hand-over (live behind backfill)."""
    from mode.utils.queues import FlowControlQueue

    from ebackpack.config import Settings
    from ebackpack.streaming.app import make_app

    app = make_app("lanes-check", Settings(data_dir=tmp_path))
    app.conf.stream_buffer_maxsize = LANE_BUFFER
    queue: FlowControlQueue[int] = FlowControlQueue(
        maxsize=app.conf.stream_buffer_maxsize, flow_control=app.flow_control
    )
    polled = app.conf.broker_max_poll_records
    assert polled is not None and queue.pressure_high_size + polled < LANE_BUFFER
