"""The one consumer loop. Every worker (the record stages, the packer, the trainer) and batch mode run
it; a Source and a Sink are the transport (Kafka in a worker, in-memory topics in batch mode), and a
Worker is the stage's own code around its records.

Take a batch, run it, send its outputs and dead letters and wait for every acknowledgement; at the
worker's commit point (a record stage: every batch; the packer: when its buffer makes a shard) send
what makes the consumed records durable elsewhere, then commit their offsets. A crash, a rebalance
or a broker restart anywhere before the commit brings the batch again (at least once: the packer
skips a document it has packed, the trainer a shard it has trained); no offset is committed whose
records' outputs were not acknowledged. An outage (faults.py) is not the batch's fault: the source
goes back to the batch, the loop waits (capped, jittered back-off, elong_stage_blocked set) and runs
it again.

Batch mode's transport is here too, beside the protocols it implements: topics as lists in one process
(MemoryTopics, MemorySource), so dead letters, stats, metrics and the packer's flush rule are the same
objects in both modes.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from entropylong_streamer.topics import TopicSpec

from .faults import Blocked, Outage, as_outage, retrying


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Produced:
    topic: TopicSpec
    key: bytes
    value: bytes

    @classmethod
    def of(cls, topic: TopicSpec, record: Any) -> Produced:
        """The record for `topic`, keyed and encoded as the topic's contract says."""
        return cls(topic, topic.key(record), topic.encode(record))


class Source(Protocol):
    drained: bool  # nothing more will come (in-memory topics read to their end; Kafka: never)

    def take(self) -> list[Message]: ...
    def rewind(self, msgs: list[Message]) -> None: ...
    def commit(self) -> None: ...
    def close(self) -> None: ...


class Sink(Protocol):
    def send(self, produced: list[Produced]) -> None: ...  # returns once every record is acknowledged
    def close(self) -> None: ...


class Worker:
    """What a stage does around the loop; each hook's default is a record stage's."""

    name = "worker"
    source: Source | None = None  # set by run(): what it reads (the trainer reports how far behind it is)

    def start(self) -> list[Produced]:
        """What to send before the first batch (what an earlier run made durable but may not have announced)."""
        return []

    def before(self, msgs: list[Message]) -> None:
        """After each take, before its batch runs (msgs may be empty): a newer model version, the gauges."""

    def run(self, msgs: list[Message]) -> tuple[list[Produced], list[Produced]]:
        """-> (outputs, dead letters) of one batch."""
        raise NotImplementedError

    def due(self, took: bool) -> bool:
        """Whether to reach a commit point now; took: this iteration brought records."""
        return took

    def flush(self) -> list[Produced]:
        """At a commit point: make what was consumed durable; -> what announces it. Called again after an
        outage until its announcement went through: what it wrote, it does not write twice."""
        return []

    def done(self) -> None:
        """What flush() and start() returned is acknowledged, and the records consumed are committed."""

    def close(self) -> None:
        pass


def run(worker: Worker, source: Source, sink: Sink, blocked: Blocked, stop: threading.Event) -> None:
    """Until stop is set (or the source is drained), then a last commit point; closes the source and sink."""

    def commit_point() -> None:
        sink.send(worker.flush())
        source.commit()
        worker.done()

    worker.source = source
    try:
        retrying(lambda: sink.send(worker.start()), blocked, stop)
        if stop.is_set():
            return
        worker.done()
        while not stop.is_set():
            msgs = source.take()
            if not msgs and source.drained:
                break
            worker.before(msgs)
            if msgs:
                try:
                    outs, dead = worker.run(msgs)
                    sink.send(outs + dead)
                except Exception as exc:  # an outage: the same batch again after a wait, nothing committed
                    outage = exc if isinstance(exc, Outage) else as_outage(exc)
                    if outage is None:
                        raise
                    source.rewind(msgs)
                    blocked.wait(outage, stop)
                    continue
                blocked.clear()
            if worker.due(bool(msgs)):
                retrying(commit_point, blocked, stop)
        retrying(commit_point, blocked, stop)
    finally:
        source.close()
        sink.close()
        worker.close()


# Batch mode's transport: in-memory topics, one partition each.


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
