"""The importer's per-learner scheduler: learners take turns for the slots, each learner's files go one
at a time in upload order, and a file already waiting or in work is not queued twice."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.importer.scheduler import FairScheduler


@dataclass(frozen=True)
class File:
    attestation_id: str
    learner_id: int


async def run_all(files: list[File], slots: int) -> tuple[list[str], int, list[bool]]:
    started: list[str] = []
    gates: dict[str, asyncio.Event] = {}
    busy, most = 0, 0

    async def work(file: File) -> None:
        nonlocal busy, most
        started.append(file.attestation_id)
        busy += 1
        most = max(most, busy)
        gates[file.attestation_id] = asyncio.Event()
        await gates[file.attestation_id].wait()
        busy -= 1

    scheduler = FairScheduler(slots, work)
    accepted = [scheduler.submit(file) for file in files]
    while scheduler.waiting or scheduler.in_work:  # finish the files one by one, oldest first
        await asyncio.sleep(0)
        for name in list(started):
            if name in gates and not gates[name].is_set():
                gates[name].set()
                break
    return started, most, accepted


def test_another_learner_gets_a_slot_while_one_learner_has_many_files() -> None:
    files = [File(f"a{i}", 1) for i in range(4)] + [File("b0", 2)]
    started, most, _ = asyncio.run(run_all(files, slots=2))

    assert started[:2] == ["a0", "b0"]  # b0 does not wait behind a1..a3
    assert [f for f in started if f.startswith("a")] == ["a0", "a1", "a2", "a3"]  # in upload order
    assert most == 2


def test_one_learner_never_has_two_files_in_work() -> None:
    started, most, _ = asyncio.run(run_all([File(f"a{i}", 1) for i in range(3)], slots=4))
    assert started == ["a0", "a1", "a2"] and most == 1


def test_learners_take_turns() -> None:
    files = [File(f"a{i}", 1) for i in range(3)] + [File(f"b{i}", 2) for i in range(3)] + [File("c0", 3)]
    started, _, _ = asyncio.run(run_all(files, slots=1))
    assert started == ["a0", "b0", "c0", "a1", "b1", "a2", "b2"]


def test_a_file_waiting_or_in_work_is_not_queued_twice() -> None:
    files = [File("a0", 1), File("a1", 1), File("a0", 1), File("a1", 1)]
    started, _, accepted = asyncio.run(run_all(files, slots=2))
    assert accepted == [True, True, False, False]
    assert started == ["a0", "a1"]
