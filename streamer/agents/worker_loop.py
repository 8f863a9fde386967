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
"""

from __future__ import annotations

import threading
from typing import Protocol

from .adapter import Message, Produced
from .faults import Blocked, Outage, as_outage, retrying


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
