"""Batch mode's transport: topics as lists in one process. Every stage runs over it in the same loop
(worker_loop.py) and Worker as over Kafka, so dead letters, stats, metrics and the packer's flush
rule are the same objects in both modes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from entropylong_streamer.topics import TopicSpec

from .adapter import Message, Produced


class MemoryTopics:
    """Every sent record kept, per topic, in order; one partition each."""

    def __init__(self) -> None:
        self._logs: dict[str, list[Message]] = defaultdict(list)

    def send(self, produced: Iterable[Produced]) -> None:
        for p in produced:
            log = self._logs[p.topic.name]
            log.append(Message(p.topic.name, 0, len(log), p.key, p.value))

    def close(self) -> None:
        pass

    def messages(self, spec: TopicSpec) -> list[Message]:
        return list(self._logs.get(spec.name, ()))

    def records(self, spec: TopicSpec) -> list:
        return [spec.decode(m.value) for m in self._logs.get(spec.name, ())]

    def counts(self) -> dict[str, int]:
        return {name: len(log) for name, log in self._logs.items()}


class MemorySource:
    """One in-memory topic read to its end in batches, as a worker takes them. commit() hands what was
    taken since the last commit to on_commit (batch mode's ledger and progress bar); records whose key is
    in skip were done by an earlier, interrupted build and are not taken."""

    def __init__(self, topics: MemoryTopics, spec: TopicSpec, batch: int,
                 on_commit: Callable[[list[Message]], None] | None = None, skip: set[str] | None = None) -> None:
        every = topics.messages(spec)
        self.msgs = [m for m in every if not skip or m.key is None or m.key.hex() not in skip]
        self.skipped = len(every) - len(self.msgs)
        self.batch, self.on_commit = batch, on_commit
        self.pos = 0
        self.taken: list[Message] = []

    @property
    def drained(self) -> bool:
        return self.pos >= len(self.msgs)

    def take(self) -> list[Message]:
        got = self.msgs[self.pos : self.pos + self.batch]
        self.pos += len(got)
        self.taken += got
        return got

    def rewind(self, msgs: list[Message]) -> None:
        self.pos -= len(msgs)
        del self.taken[len(self.taken) - len(msgs) :]

    def commit(self) -> None:
        if self.on_commit is not None and self.taken:
            self.on_commit(self.taken)
        self.taken = []

    def close(self) -> None:
        pass
