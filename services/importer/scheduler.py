"""Learners take turns: per-learner queues served by a bounded number of slots.

Each learner has at most one file in work at a time, in the order they uploaded; learners with waiting
files take the free slots in turn. So one learner's many (or hostile, slow) files hold up only that
learner: another learner's upload waits at most for a slot to free, i.e. one file's time budget, and
not at all while a slot is idle. The upload itself is in the database (state `received`) before its
event is read, so nothing queued here is lost when the worker stops: the stuck-upload sweep takes it up.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class Work(Protocol):
    @property
    def attestation_id(self) -> str: ...

    @property
    def learner_id(self) -> Hashable: ...


W = TypeVar("W", bound=Work)


class FairScheduler(Generic[W]):
    def __init__(self, slots: int, run: Callable[[W], Awaitable[None]]) -> None:
        self.slots, self._run = slots, run
        self._queues: dict[Hashable, deque[W]] = {}
        self._turns: deque[Hashable] = deque()  # learners with a file waiting and none in work
        self._busy: set[Hashable] = set()
        self._known: set[str] = set()  # attestations waiting or in work
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, work: W) -> bool:
        """Queues `work` behind its learner's earlier files; False when it is already waiting or in work
        (a redelivered event, the sweep finding a queued upload)."""
        if work.attestation_id in self._known:
            return False
        self._known.add(work.attestation_id)
        learner = work.learner_id
        self._queues.setdefault(learner, deque()).append(work)
        if learner not in self._busy and learner not in self._turns:
            self._turns.append(learner)
        self._dispatch()
        return True

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    @property
    def in_work(self) -> int:
        return len(self._busy)

    def _dispatch(self) -> None:
        while self._turns and len(self._busy) < self.slots:
            learner = self._turns.popleft()
            work = self._queues[learner].popleft()
            self._busy.add(learner)
            task = asyncio.get_running_loop().create_task(self._serve(learner, work))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, learner: Hashable, work: W) -> None:
        try:
            await self._run(work)
        except Exception:
            log.exception("import of %s failed; the sweep takes it up again", work.attestation_id)
        finally:
            self._known.discard(work.attestation_id)
            self._busy.discard(learner)
            if self._queues[learner]:
                self._turns.append(learner)
            else:
                del self._queues[learner]
            self._dispatch()
