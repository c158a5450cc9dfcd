"""An in-memory stream: lists of `SourceMessage` through the same steps as a worker (steps.py), with no faust
and no broker, a dead-letter sink in a list and the commits recorded. For fast tests of the runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field

from schemas import DeadLetterMessage

from .policy import SourceMessage
from .steps import Batch, Letter, Pipeline, run

Offsets = dict[tuple[str, int], int]  # (topic, partition) -> the next offset to read


def messages(
    values: Iterable[bytes | None], *, topic: str = "t", partition: int = 0, key: bytes | None = b"k"
) -> list[SourceMessage]:
    """One message per value, at offsets 0, 1, 2, ... of one partition."""
    return [SourceMessage(topic, partition, offset, key, value) for offset, value in enumerate(values)]


def in_batches(source: list[SourceMessage], size: int) -> list[list[SourceMessage]]:
    return [source[i : i + size] for i in range(0, len(source), size)]


@dataclass
class MemoryDeadLetters:
    """A `DeadLetterSink` in a list. While `reachable` is False every send fails as an unreachable topic
    does (a transient error: the stream pauses on it)."""

    letters: list[DeadLetterMessage] = field(default_factory=list)
    reachable: bool = True
    attempts: int = 0

    async def send(self, letters: Sequence[Letter]) -> None:
        self.attempts += 1
        if not self.reachable:
            raise ConnectionRefusedError(111, "the dead-letter topic is unreachable")
        self.letters += [DeadLetterMessage.model_validate_json(value) for _key, value in letters]

    @property
    def offsets(self) -> list[int]:
        """The source offsets of the dead letters, in the order they were sent."""
        return [letter.data.offset for letter in self.letters]


@dataclass
class MemoryStream:
    """Feeds `batches` through a pipeline, one after the other, and commits each batch after its last step,
    as a worker does: `commits` lists what each commit stored."""

    batches: list[list[SourceMessage]]
    commits: list[Offsets] = field(default_factory=list)

    @property
    def committed(self) -> Offsets:
        """Per partition, the next offset a restarted consumer would read."""
        position: Offsets = {}
        for commit in self.commits:
            position.update(commit)
        return position

    async def run(self, pipeline: Pipeline) -> list[Batch]:
        done = []
        async for batch in run(self._source(), pipeline):
            self.commits.append(batch.next_offsets())
            done.append(batch)
        return done

    async def _source(self) -> AsyncIterator[list[SourceMessage]]:
        for batch in self.batches:
            yield list(batch)


@dataclass
class RecordedPauses:
    """A `PauseReport` that keeps what it is told."""

    causes: list[BaseException] = field(default_factory=list)
    resumed_after: list[float] = field(default_factory=list)

    def paused(self, cause: BaseException) -> None:
        self.causes.append(cause)

    def resumed(self, seconds: float, stopped: bool = False) -> None:
        self.resumed_after.append(seconds)
