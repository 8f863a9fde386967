"""A worker's source topic over Kafka: the batches a consumer group member takes (take_batch, which
handles rebalances mid-batch), rewound after an outage, committed when the loop says. Imported by
the worker only: kafka-python loads here, not with every command."""

from __future__ import annotations

import time

from kafka import ConsumerRebalanceListener

from entropylong_streamer.config import Config

from . import kafka_clients as kc
from .worker_loop import Message


class Revoked(ConsumerRebalanceListener):
    """The partitions rebalances took from this consumer since take_batch last cleared it."""

    def __init__(self) -> None:
        self.partitions: set[int] = set()
        self.dropped = 0  # records take_batch left to their partitions' next owner
        self.rebalances = 0  # that took partitions from this consumer

    def on_partitions_revoked(self, revoked) -> None:
        self.partitions |= {tp.partition for tp in revoked}
        self.rebalances += bool(revoked)

    def on_partitions_assigned(self, assigned) -> None:
        pass


def take_batch(cons, max_batch: int, wait_s: float, revoked: Revoked | None = None) -> list[Message]:
    """Up to max_batch records: what one poll brings, topped up until max_batch or until wait_s
    has passed since the first record arrived (nothing when the topic is quiet).

    A rebalance during a top-up poll revokes partitions whose records this batch already holds:
    their offsets were not committed, so their next owner reads them from the committed offset. They
    are dropped here, or both owners would process them; unless the partition came back to this
    consumer, which then goes on from its position (tests/integration/test_stage_loop.py)."""
    msgs = kc.poll_messages(cons, max_records=max_batch)
    deadline = time.monotonic() + wait_s
    while msgs and len(msgs) < max_batch:
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            break
        if revoked is not None:
            revoked.partitions.clear()
        more = kc.poll_messages(cons, max_records=max_batch - len(msgs), timeout_ms=min(left_ms, 250))
        if revoked is not None and revoked.partitions:
            # A partition the rebalance gave back to this consumer keeps its position (kafka-python 3
            # preserves the state of partitions in both assignments): its records stay in the batch,
            # or they would be committed past unprocessed.
            ours = {tp.partition for tp in cons.assignment()}
            gone = revoked.partitions - ours
            kept = [m for m in msgs if m.partition not in gone]
            revoked.dropped += len(msgs) - len(kept)
            msgs = kept
        msgs += more
    return msgs


class KafkaSource:
    """A consumer group member's records of one topic, in batches (take_batch), committed when told."""

    drained = False  # a topic never ends

    def __init__(self, cfg: Config, topic: str, group: str, max_batch: int, wait_s: float) -> None:
        self.revoked = Revoked()
        self.cons = kc.consumer(cfg, topic, group, self.revoked)
        self.max_batch, self.wait_s = max_batch, wait_s

    def take(self) -> list[Message]:
        return take_batch(self.cons, self.max_batch, self.wait_s, self.revoked)

    def rewind(self, msgs: list[Message]) -> None:
        kc.rewind(self.cons, msgs)

    def commit(self) -> None:
        kc.commit(self.cons)  # refused after a rebalance: the batch comes again, nothing is lost

    def behind(self) -> int:
        """Records of its partitions not yet taken."""
        parts = list(self.cons.assignment())
        if not parts:
            return 0
        ends = self.cons.end_offsets(parts)
        return sum(max(0, ends[tp] - self.cons.position(tp)) for tp in parts)

    def close(self) -> None:
        self.cons.close(autocommit=False)
